// Building blocks shared by the architecture graph builders: norms, linear
// layers, the SwiGLU feed-forward, and attention through the KV cache.
#pragma once

#include "core/graph.h"
#include "models/forward.h"

namespace moelite {

// rms_norm(x) * w
Tensor* norm_rms(Graph& g, Tensor* x, Tensor* w, float eps);
// w x (+ b): x [in, T] -> [out, T]
Tensor* linear(Graph& g, Tensor* x, Tensor* w, Tensor* b = nullptr);
// down(silu(gate x) * (up x))
Tensor* ffn_swiglu(Graph& g, Tensor* x, Tensor* gate, Tensor* up, Tensor* down);

// Writes this batch's k [Dk, n_kv_heads, T] and v [Dv, n_kv_heads, T] into the
// layer's cache at kv_pos, then attends q [Dk, n_head, T] over cache positions
// [0, n_kv). Returns [Dv * n_head, T].
Tensor* attention_cached(Graph& g, KvCache& cache, int64_t layer, const ForwardInputs& in, Tensor* q, Tensor* k,
                         Tensor* v, float scale);

// The last token's column of x [n, T] when only the last logits are wanted.
Tensor* last_token_only(Graph& g, Tensor* x, const ForwardInputs& in);

}  // namespace moelite
