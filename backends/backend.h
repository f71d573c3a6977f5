// The backend interface: where tensors live and where ops run.
//
// A Backend allocates Buffers, says which ops it can compute (supports_op),
// copies tensor data in and out, and computes a run of graph nodes whose
// inputs live in its own buffers (or in host memory it can read). The
// scheduler (backends/scheduler.h) places nodes on backends and inserts the
// copies between them. The CPU backend is always present and is the
// reference that every other backend is tested against.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"

namespace moelite {

// Which ops read a model weight offered to Backend::adopt_weight.
enum class WeightReaders {
    MulMatOnly,        // the weight operand of mul_mat, nothing else
    MulMatAndGetRows,  // also get_rows: a token embedding tied to the output
    NotMulMat          // other ops (a norm's weight, a bias): read in the file's layout
};

class Backend;

// A block of memory owned by one backend. Host buffers expose a CPU pointer;
// device buffers expose an opaque base that only their backend interprets.
class Buffer {
public:
    virtual ~Buffer() = default;
    virtual Backend& backend() const = 0;
    virtual void* base() const = 0;
    virtual size_t size() const = 0;
    virtual bool is_host() const = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;
    // Alignment the backend wants for tensor data inside its buffers.
    virtual size_t alignment() const { return 64; }

    virtual std::unique_ptr<Buffer> alloc_buffer(size_t bytes) = 0;
    // A buffer over memory the caller owns and keeps alive (e.g. the mmap'd
    // weights of a model file). Only host backends can do this; others return
    // nullptr and need the weights copied into alloc_buffer memory.
    virtual std::unique_ptr<Buffer> wrap_host_memory(void* ptr, size_t bytes) = 0;

    // Offers model weight `t` (its data in host memory, e.g. the mapped file)
    // to the backend, which may keep it in a layout or memory of its own: it
    // then returns the buffer now holding t's data, with t.data, t.buffer and
    // t.flags updated, and the caller keeps that buffer as long as t. nullptr
    // leaves t as it was. The caller says which ops read the weight: only a
    // weight that nothing but mul_mat reads may change layout; the others
    // (a token embedding tied to the output, also read by get_rows; a norm's
    // weight or a bias) keep the file's layout, and only their memory may
    // change.
    virtual std::unique_ptr<Buffer> adopt_weight(Tensor& t, WeightReaders readers) {
        (void)t;
        (void)readers;
        return nullptr;
    }

    // Whether this backend can compute `node` (its op, types and layout).
    virtual bool supports_op(const Tensor& node) const = 0;

    // Copies between host memory and a tensor of this backend (t.buffer must
    // belong to it). offset and size are bytes within the tensor's data.
    virtual void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) = 0;
    virtual void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) = 0;

    // Computes nodes in order. Every node's data is set (planned) and every
    // source is readable by this backend. May return before the work is done;
    // synchronize() waits.
    virtual void compute(std::span<Tensor* const> nodes) = 0;
    virtual void synchronize() = 0;
};

}  // namespace moelite
