// Tensor: a typed, strided view of up to four dimensions, and the node type of
// the op graph (core/graph.h).
//
// Conventions (ggml's, so GGUF shapes read the same):
//  - ne[0] is the innermost, contiguous dimension: a matrix of R rows and C
//    columns has ne = {C, R, 1, 1}; nb[i] is the byte stride of dimension i and
//    nb[0] is the element (or block) size;
//  - a tensor owns no memory: `data` points into a Buffer that belongs to one
//    backend (a weight points into the mmap'd file);
//  - a view (reshape, permute, slice) shares its source's memory: view_src and
//    view_offset say where; the planner gives it no storage of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/dtype.h"

namespace moelite {

class Buffer;  // backends/backend.h: memory owned by one backend; opaque here

inline constexpr int kMaxDims = 4;
inline constexpr int kMaxSrc = 6;
inline constexpr int kMaxParams = 16;

// The ops a graph can hold. See core/graph.h for each op's exact semantics.
enum class Op : uint8_t {
    None,  // a leaf: weight or input; nothing to compute
    // views: no computation, memory shared with the source
    View,
    Reshape,
    Permute,
    Transpose,
    // computation
    GetRows,
    MulMat,
    MulMatId,
    Add,
    Mul,
    Scale,
    RmsNorm,
    Rope,
    SoftMax,
    Silu,
    Sigmoid,
    Swiglu,
    ArgsortTopK,
    Concat,
    Cont,
    Cpy,
    FlashAttn,
    SumRows,
    Div,
    Count,
};

const char* op_name(Op op);
inline bool op_is_view(Op op) { return op == Op::View || op == Op::Reshape || op == Op::Permute || op == Op::Transpose; }

enum TensorFlag : uint32_t {
    kTensorInput = 1u << 0,   // filled by the caller before compute
    kTensorOutput = 1u << 1,  // read by the caller after compute: never reused by the planner
    kTensorWeight = 1u << 2,  // model weight: lives in a weight buffer, never planned
    kTensorPlanned = 1u << 3, // data was set by a memory plan's bind (core/planner.h): planned again on a re-plan
    kTensorRepacked = 1u << 4, // weight in its backend's own interleaved layout (quant/repack.h): only mul_mat reads it
};

struct Tensor {
    DType type = DType::F32;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};
    size_t nb[kMaxDims] = {0, 0, 0, 0};

    Op op = Op::None;
    Tensor* src[kMaxSrc] = {};
    int32_t params[kMaxParams] = {};  // op parameters; floats stored by bit pattern

    Tensor* view_src = nullptr;  // for views: the tensor whose memory this is
    size_t view_offset = 0;      // byte offset into view_src

    void* data = nullptr;
    Buffer* buffer = nullptr;
    uint32_t flags = 0;
    std::string name;

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
    size_t row_bytes() const { return dtype_row_bytes(type, ne[0]); }
    // Bytes spanned from the first to the last element (views may have gaps).
    size_t nbytes() const;
    bool is_contiguous() const;
    // Rows are contiguous (nb[0] is the element size) even if rows are strided.
    bool rows_contiguous() const;
    bool is_view() const { return view_src != nullptr; }
    bool is_leaf() const { return op == Op::None; }

    int32_t param_i32(int i) const { return params[i]; }
    float param_f32(int i) const {
        float f;
        std::memcpy(&f, &params[i], 4);
        return f;
    }
    void set_param_i32(int i, int32_t v) { params[i] = v; }
    void set_param_f32(int i, float v) { std::memcpy(&params[i], &v, 4); }

    // Pointer to element/block (i0 counted in elements, a multiple of the block size).
    void* ptr(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
        return static_cast<char*>(data) + (i0 / dtype_block_size(type)) * nb[0] + i1 * nb[1] + i2 * nb[2] +
               i3 * nb[3];
    }
};

// Sets ne (missing dims 1) and contiguous strides for `type`.
void tensor_set_shape(Tensor& t, DType type, const int64_t* ne, int n_dims);
// Same shape (ne) in every dimension.
bool tensor_same_shape(const Tensor& a, const Tensor& b);
// Human-readable "[4096, 32000]" (trailing 1s dropped).
std::string tensor_shape_string(const Tensor& t);

}  // namespace moelite
