// Unicode Character Database tables, generated into models/unicode_tables.cpp
// by tools/gen_unicode_tables.py (rerun it to move to a newer Unicode). Only
// models/unicode.cpp reads them; everyone else uses models/unicode.h.
//
// Every table is sorted by code point, so lookups are binary searches:
//  - category_ranges: maximal runs of code points sharing a general category,
//    the category as an index into GeneralCategory (unicode.h); code points in
//    no range are unassigned (Cn);
//  - white_space_ranges: the White_Space property (PropList.txt);
//  - nfc_quick_check_ranges: code points whose NFC_QC property is No or Maybe
//    (DerivedNormalizationProps.txt): text without them (and with combining
//    classes in order) is already in NFC;
//  - combining_class_ranges: runs with the same non-zero canonical combining
//    class; code points in no range have class 0;
//  - decompositions: code points with a canonical decomposition, already fully
//    expanded (recursively), as `length` code points from decomposition_pool;
//    Hangul syllables are left to the algorithm and are not listed;
//  - compositions: primary composites for NFC, keyed by
//    (first << 21) | second, composition exclusions already removed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moelite::unicode_tables {

struct CategoryRange {
    uint32_t first;
    uint32_t last;
    uint8_t category;
};

struct CodeRange {
    uint32_t first;
    uint32_t last;
};

struct CombiningClassRange {
    uint32_t first;
    uint32_t last;
    uint8_t combining_class;
};

struct Decomposition {
    uint32_t code_point;
    uint16_t offset;  // into decomposition_pool
    uint8_t length;
};

struct Composition {
    uint64_t pair;  // (first << 21) | second
    uint32_t composite;
};

extern const CategoryRange category_ranges[];
extern const size_t category_ranges_count;
extern const CodeRange white_space_ranges[];
extern const size_t white_space_ranges_count;
extern const CodeRange nfc_quick_check_ranges[];
extern const size_t nfc_quick_check_ranges_count;
extern const CombiningClassRange combining_class_ranges[];
extern const size_t combining_class_ranges_count;
extern const Decomposition decompositions[];
extern const size_t decompositions_count;
extern const uint32_t decomposition_pool[];
extern const size_t decomposition_pool_count;
extern const Composition compositions[];
extern const size_t compositions_count;

}  // namespace moelite::unicode_tables
