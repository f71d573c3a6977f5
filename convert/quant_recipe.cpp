#include "convert/quant_recipe.h"

#include <cctype>
#include <cstdio>

#include "core/error.h"
#include "quant/quant.h"

namespace moelite {
namespace {

struct RecipeName {
    const char* name;
    DType base;
    bool mixture;
    FileType file_type;
};

// Plain types map to the llama.cpp file type whose bulk type they are; a pure
// q4_k / q5_k file is closest to Q4_K_S / Q5_K_S (llama.cpp has no "pure" id).
constexpr RecipeName kRecipes[] = {
    {"f32", DType::F32, false, FileType::AllF32},          {"f16", DType::F16, false, FileType::MostlyF16},
    {"bf16", DType::BF16, false, FileType::MostlyBF16},    {"q8_0", DType::Q8_0, false, FileType::MostlyQ8_0},
    {"q4_0", DType::Q4_0, false, FileType::MostlyQ4_0},    {"q4_1", DType::Q4_1, false, FileType::MostlyQ4_1},
    {"q5_0", DType::Q5_0, false, FileType::MostlyQ5_0},    {"q5_1", DType::Q5_1, false, FileType::MostlyQ5_1},
    {"q4_k", DType::Q4_K, false, FileType::MostlyQ4_K_S},  {"q5_k", DType::Q5_K, false, FileType::MostlyQ5_K_S},
    {"q6_k", DType::Q6_K, false, FileType::MostlyQ6_K},    {"q4_k_m", DType::Q4_K, true, FileType::MostlyQ4_K_M},
    {"q5_k_m", DType::Q5_K, true, FileType::MostlyQ5_K_M},
};

// Types a weight may be stored in (activation-only types excluded).
constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                                  DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                                  DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = char(std::tolower((unsigned char)c));
    return out;
}

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}
bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Layer index of "blk.N.*", or -1.
int64_t layer_of(std::string_view name) {
    if (name.substr(0, 4) != "blk.") return -1;
    int64_t v = 0;
    size_t i = 4;
    if (i >= name.size() || !std::isdigit((unsigned char)name[i])) return -1;
    for (; i < name.size() && std::isdigit((unsigned char)name[i]); ++i) {
        v = v * 10 + (name[i] - '0');
        if (v > (int64_t(1) << 30)) return -1;
    }
    return i < name.size() && name[i] == '.' ? v : -1;
}

// The q4_k_m / q5_k_m rule for one tensor (llama.cpp's categories by name).
DType mixture_type(const QuantRecipe& r, const RecipeModel& m, std::string_view name, int64_t ne0) {
    const DType base = r.base;
    const bool is_output = name == "output.weight" || (m.tied_embeddings && name == "token_embd.weight");
    if (is_output) return ne0 % dtype_block_size(base) != 0 ? DType::Q8_0 : DType::Q6_K;
    if (name == "token_embd.weight") return base;
    const int64_t il = layer_of(name);
    const bool more_bits = il >= 0 && recipe_use_more_bits(il, m.n_layer);
    if (contains(name, "attn_v.weight") || contains(name, "attn_kv_b.weight") || contains(name, "attn_qkv.weight")) {
        DType t = more_bits ? DType::Q6_K : base;
        const bool is_70b =
            (m.arch == Arch::Llama || m.arch == Arch::Qwen2) && m.n_layer == 80 && m.n_head != m.n_head_kv;
        if (is_70b && t == DType::Q4_K) t = DType::Q5_K;
        return t;
    }
    if (contains(name, "ffn_down")) return more_bits ? DType::Q6_K : base;
    return base;
}

DType fallback_of(DType t) {
    switch (t) {
        case DType::Q4_K:
            return DType::Q5_0;
        case DType::Q5_K:
            return DType::Q5_1;
        case DType::Q6_K:
            return DType::Q8_0;
        case DType::Q2_K:
        case DType::Q3_K:
            return DType::Q4_0;
        default:
            return DType::F16;
    }
}

}  // namespace

std::string recipe_type_names() {
    std::string s;
    for (const auto& r : kRecipes) {
        if (!s.empty()) s += ", ";
        s += r.name;
    }
    return s;
}

QuantRecipe recipe_from_name(std::string_view name, const char* what) {
    const std::string n = lower(name);
    for (const auto& r : kRecipes) {
        if (n != r.name) continue;
        QuantRecipe q;
        q.name = r.name;
        q.base = r.base;
        q.mixture = r.mixture;
        q.file_type = r.file_type;
        return q;
    }
    fail("%s: unknown type '%.*s' (known: %s)", what, int(name.size()), name.data(), recipe_type_names().c_str());
}

DType recipe_tensor_type(std::string_view name, const char* what) {
    const std::optional<DType> t = dtype_from_name(name);
    if (t) {
        for (DType w : kWeightTypes)
            if (w == *t && quant_traits(w) && quant_traits(w)->from_float) return w;
    }
    std::string known;
    for (DType w : kWeightTypes) {
        if (!known.empty()) known += ", ";
        known += lower(dtype_name(w));
    }
    fail("%s: '%.*s' is not a type weights can be stored in (known: %s)", what, int(name.size()), name.data(),
         known.c_str());
}

RecipeOverride recipe_override(std::string_view spec) {
    const size_t eq = spec.rfind('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size())
        fail("--override: '%.*s' is not REGEX=TYPE", int(spec.size()), spec.data());
    RecipeOverride o;
    o.pattern = std::string(spec.substr(0, eq));
    o.type = recipe_tensor_type(spec.substr(eq + 1), "--override");
    try {
        o.regex = std::regex(o.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        fail("--override: '%s' is not a valid regular expression: %s", o.pattern.c_str(), e.what());
    }
    return o;
}

RecipeModel recipe_model(const HParams& hp) {
    return RecipeModel{hp.arch, hp.n_layer, hp.n_head, hp.n_head_kv, hp.tied_embeddings};
}

bool tensor_is_quantizable(std::string_view name, int n_dims) {
    if (n_dims < 2) return false;
    if (!ends_with(name, ".weight")) return false;
    if (contains(name, "_norm.weight")) return false;
    if (contains(name, "ffn_gate_inp.weight")) return false;  // the MoE router stays f32
    return true;
}

bool recipe_use_more_bits(int64_t layer, int64_t n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

TypeChoice recipe_choose(const QuantRecipe& r, const RecipeModel& m, std::string_view name,
                         const std::vector<int64_t>& ne) {
    MOELITE_ASSERT(!ne.empty());
    int n_dims = int(ne.size());
    while (n_dims > 1 && ne[size_t(n_dims - 1)] == 1) --n_dims;  // as ggml_n_dims: trailing 1s do not count
    if (!tensor_is_quantizable(name, n_dims)) return {DType::F32, ""};

    TypeChoice c{r.base, ""};
    bool chosen = false;
    for (const RecipeOverride& o : r.overrides) {
        if (std::regex_search(name.begin(), name.end(), o.regex)) {
            c.type = o.type;
            chosen = true;
            break;
        }
    }
    if (!chosen) {
        if (r.experts && contains(name, "_exps.")) {
            c.type = *r.experts;
        } else if (r.embed && name == "token_embd.weight") {
            c.type = *r.embed;
        } else if (r.attn && contains(name, "attn_")) {
            c.type = *r.attn;
        } else if (r.mixture) {
            c.type = mixture_type(r, m, name, ne[0]);
        }
    }

    const int64_t ne0 = ne[0];
    if (ne0 % dtype_block_size(c.type) != 0) {
        DType t = fallback_of(c.type);
        if (ne0 % dtype_block_size(t) != 0) t = DType::F16;
        c.note =
            strprintf("%.*s: rows of %lld do not fit %s's blocks of %lld; written as %s", int(name.size()), name.data(),
                      (long long)ne0, dtype_name(c.type), (long long)dtype_block_size(c.type), dtype_name(t));
        c.type = t;
    }
    return c;
}

}  // namespace moelite
