// Hugging Face checkpoint directories (sharded or not) and FP8 block-scaled
// weights. See core/safetensors.h.
#include <algorithm>
#include <cinttypes>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/mmap.h"
#include "core/safetensors.h"
#include "core/safetensors_internal.h"

namespace moelite {

namespace fs = std::filesystem;
using json = nlohmann::json;
using safetensors_detail::printable;
using safetensors_detail::shape_string;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
// DeepSeek-V3's index (91k tensors) is under 10 MB.
constexpr size_t kMaxIndexBytes = 256u << 20;

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);  // follows symlinks, as Hugging Face caches use them
}

// "'a', 'b', 'c' and 4 more"
std::string name_list(const std::vector<std::string>& names) {
    constexpr size_t kShown = 3;
    std::string s;
    for (size_t i = 0; i < names.size() && i < kShown; ++i) {
        if (i) s += ", ";
        s += '\'';
        s += printable(names[i]);
        s += '\'';
    }
    if (names.size() > kShown) s += strprintf(" and %zu more", names.size() - kShown);
    return s;
}

// A shard named by the index must be a plain file name in the same directory:
// no separators, nothing that climbs out of it, no control bytes.
bool is_plain_file_name(const std::string& name) {
    if (name.empty() || name == "." || name == "..") return false;
    for (unsigned char c : name)
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return false;
    return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// checkpoints

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path) : path_(path) {
    std::error_code ec;
    const fs::path p(path);
    if (is_file(p) && p.filename().string().ends_with(".index.json")) {
        open_index(path);
    } else if (is_file(p)) {
        open_files({path});
    } else if (fs::is_directory(p, ec)) {
        if (is_file(p / kIndexName)) {
            open_index((p / kIndexName).string());
        } else if (is_file(p / kSingleName)) {
            open_files({(p / kSingleName).string()});
        } else {
            std::vector<std::string> files;
            for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
                if (it->path().extension() == ".safetensors" && is_file(it->path()))
                    files.push_back(it->path().string());
            }
            if (ec) fail("%s: cannot list the directory: %s", path.c_str(), ec.message().c_str());
            if (files.empty()) fail("%s: no %s, %s or other *.safetensors file", path.c_str(), kIndexName, kSingleName);
            std::sort(files.begin(), files.end());
            open_files(files);
        }
    } else if (fs::exists(p, ec)) {
        fail("%s: neither a directory nor a regular file", path.c_str());
    } else {
        fail("%s: no such file or directory", path.c_str());
    }
    MOELITE_LOG_DEBUG("%s: %zu tensors in %zu safetensors file(s)%s", path.c_str(), tensors_.size(), shards_.size(),
                      has_index_ ? " (indexed)" : "");
}

SafetensorsCheckpoint::~SafetensorsCheckpoint() = default;

void SafetensorsCheckpoint::open_files(const std::vector<std::string>& files) {
    for (const auto& f : files) shards_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto& shard : shards_)
        for (const auto& t : shard->tensors()) tensors_.push_back(&t);
    build_lookup();
}

void SafetensorsCheckpoint::open_index(const std::string& index_path) {
    has_index_ = true;
    const char* index = index_path.c_str();
    const fs::path dir = fs::path(index_path).parent_path();

    json root;
    {
        MappedFile map(index_path);
        if (map.size() > kMaxIndexBytes) fail("%s: %zu bytes is too large for an index", index, map.size());
        const char* text = reinterpret_cast<const char*>(map.data());
        root = safetensors_detail::parse_json_strict(index_path, "index", text, text + map.size(), false);
    }
    if (!root.is_object()) fail("%s: index is not a JSON object", index);
    auto map_it = root.find("weight_map");
    if (map_it == root.end()) fail("%s: index has no \"weight_map\"", index);
    if (!map_it->is_object()) fail("%s: \"weight_map\" is not a JSON object", index);
    if (map_it->empty()) fail("%s: \"weight_map\" is empty", index);

    // shard file name -> the tensor names the index puts there; sorted by
    // shard name, which fixes the order of the checkpoint's tensors.
    std::map<std::string, std::vector<std::string>> listed;
    for (auto& [name, shard] : map_it->items()) {
        if (!shard.is_string())
            fail("%s: weight_map entry for '%s' is not a string (it is %s)", index, printable(name).c_str(),
                 shard.type_name());
        const std::string& file = shard.get_ref<const std::string&>();
        if (!is_plain_file_name(file)) {
            fail("%s: weight_map puts '%s' in '%s', which is not a plain file name in the checkpoint's directory",
                 index, printable(name).c_str(), printable(file).c_str());
        }
        listed[file].push_back(name);
    }

    for (auto& [file, names] : listed) {
        const fs::path shard_path = dir / file;
        if (!is_file(shard_path)) {
            fail("%s: weight_map lists shard %s (for %zu tensors, e.g. '%s'), which does not exist", index,
                 shard_path.string().c_str(), names.size(), printable(names.front()).c_str());
        }
        shards_.push_back(std::make_unique<SafetensorsFile>(shard_path.string()));
        const SafetensorsFile& sf = *shards_.back();

        std::vector<std::string> absent;
        for (const auto& name : names)
            if (!sf.find(name)) absent.push_back(name);
        if (!absent.empty()) {
            fail("%s: weight_map puts %zu tensor(s) in %s that it does not hold: %s", index, absent.size(),
                 sf.path().c_str(), name_list(absent).c_str());
        }
        std::vector<std::string> unlisted;
        for (const auto& t : sf.tensors()) {
            auto entry = map_it->find(t.name);
            if (entry == map_it->end()) {
                unlisted.push_back(t.name);
            } else if (const auto& other = entry->get_ref<const std::string&>(); other != file) {
                fail("%s: shard %s holds tensor '%s', but weight_map puts it in '%s'", index, sf.path().c_str(),
                     printable(t.name).c_str(), printable(other).c_str());
            }
        }
        if (!unlisted.empty()) {
            fail("%s: shard %s holds %zu tensor(s) that weight_map does not list: %s", index, sf.path().c_str(),
                 unlisted.size(), name_list(unlisted).c_str());
        }
        for (const auto& t : sf.tensors()) tensors_.push_back(&t);
    }
    build_lookup();
}

void SafetensorsCheckpoint::build_lookup() {
    for (const SafetensorsTensor* t : tensors_) {
        auto [it, added] = by_name_.emplace(t->name, t);
        if (!added) {
            fail("%s: tensor '%s' is in both %s and %s", path_.c_str(), printable(t->name).c_str(),
                 it->second->file->path().c_str(), t->file->path().c_str());
        }
    }
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const SafetensorsTensor* t : tensors_) out.push_back(t->name);
    return out;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsCheckpoint::get(std::string_view name) const {
    const SafetensorsTensor* t = find(name);
    if (!t) fail("%s: the checkpoint has no tensor named '%s'", path_.c_str(), printable(name).c_str());
    return *t;
}

// ---------------------------------------------------------------------------
// FP8 block scales

void fp8_check_block_scales(const SafetensorsTensor& weight, const SafetensorsTensor& scale_inv, int64_t block_rows,
                            int64_t block_cols) {
    const char* wfile = weight.file ? weight.file->path().c_str() : "?";
    const char* sfile = scale_inv.file ? scale_inv.file->path().c_str() : "?";
    const std::string wname = printable(weight.name);
    const std::string sname = printable(scale_inv.name);
    if (block_rows <= 0 || block_cols <= 0) {
        fail("%s: tensor '%s': FP8 block size %" PRId64 "x%" PRId64 " is not positive", wfile, wname.c_str(),
             block_rows, block_cols);
    }
    if (weight.dtype != SafetensorsDType::F8_E4M3) {
        fail("%s: tensor '%s' has dtype %s; block scales apply to F8_E4M3 weights", wfile, wname.c_str(),
             safetensors_dtype_name(weight.dtype));
    }
    if (weight.shape.size() != 2) {
        fail("%s: tensor '%s' has shape %s; FP8 block scales need a 2-D weight", wfile, wname.c_str(),
             weight.shape_string().c_str());
    }
    if (!safetensors_dtype_is_float(scale_inv.dtype)) {
        fail("%s: scale tensor '%s' has dtype %s, not a float type", sfile, sname.c_str(),
             safetensors_dtype_name(scale_inv.dtype));
    }
    const int64_t rows = weight.shape[0], cols = weight.shape[1];
    const std::vector<int64_t> want = {rows / block_rows + (rows % block_rows != 0),
                                       cols / block_cols + (cols % block_cols != 0)};
    if (scale_inv.shape != want) {
        fail("%s: scale tensor '%s' has shape %s, but weight '%s' %s (in %s) in %" PRId64 "x%" PRId64
             " blocks needs %s",
             sfile, sname.c_str(), scale_inv.shape_string().c_str(), wname.c_str(), weight.shape_string().c_str(),
             wfile, block_rows, block_cols, shape_string(want).c_str());
    }
}

void fp8_dequantize_rows(const SafetensorsTensor& weight, const SafetensorsTensor& scale_inv, int64_t row_begin,
                         int64_t row_end, float* out, int64_t block_rows, int64_t block_cols) {
    fp8_check_block_scales(weight, scale_inv, block_rows, block_cols);
    const int64_t rows = weight.shape[0], cols = weight.shape[1];
    MOELITE_ASSERT(0 <= row_begin && row_begin <= row_end && row_end <= rows);
    if (row_begin == row_end) return;
    // At least one row: the scale tensor then holds a full row of scale_cols
    // entries, so this allocation is bounded by the file's size.
    const int64_t scale_cols = scale_inv.shape[1];
    std::vector<float> scales(static_cast<size_t>(scale_cols));  // the scale row of the current block row
    int64_t scale_row = -1;
    for (int64_t r = row_begin; r < row_end; ++r) {
        if (r / block_rows != scale_row) {
            scale_row = r / block_rows;
            scale_inv.read_f32(scale_row * scale_cols, scale_cols, scales.data());
        }
        float* o = out + (r - row_begin) * cols;
        for (int64_t b = 0; b < scale_cols; ++b) {
            const int64_t c0 = b * block_cols;  // < cols: b <= (cols - 1) / block_cols
            const int64_t n = std::min(block_cols, cols - c0);
            weight.read_f32(r * cols + c0, n, o + c0);
            const float s = scales[size_t(b)];
            for (int64_t i = 0; i < n; ++i) o[c0 + i] *= s;
        }
    }
}

}  // namespace moelite
