// core/graph: builder shapes and parameters, views, the shape asserts, and the
// execution order build_forward produces.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/graph.h"

using namespace moelite;

namespace {

// Runs f in a child process; true when it dies (an assert aborts) instead of returning.
bool dies(const std::function<void()>& f) {
    const pid_t pid = fork();
    if (pid == 0) {
        // doctest's crash handler would report the expected abort as a failure
        std::signal(SIGABRT, SIG_DFL);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        f();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

std::vector<int64_t> shape(const Tensor* t) { return {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}; }

}  // namespace

TEST_CASE("graph: op builders infer the shapes of core/graph.h") {
    Graph g;
    Tensor* w = g.new_tensor(DType::Q4_K, {512, 64}, "w");
    Tensor* x = g.new_input(DType::F32, {512, 7, 2});
    CHECK(shape(g.mul_mat(w, x)) == std::vector<int64_t>{64, 7, 2, 1});
    CHECK(g.mul_mat(w, x)->type == DType::F32);

    Tensor* experts = g.new_tensor(DType::Q8_0, {512, 96, 8});
    Tensor* ids = g.new_input(DType::I32, {3, 5});
    CHECK(shape(g.mul_mat_id(experts, g.new_tensor(DType::F32, {512, 1, 5}), ids)) ==
          std::vector<int64_t>{96, 3, 5, 1});
    CHECK(shape(g.mul_mat_id(experts, g.new_tensor(DType::F32, {512, 3, 5}), ids)) ==
          std::vector<int64_t>{96, 3, 5, 1});

    Tensor* table = g.new_tensor(DType::Q6_K, {256, 1000});
    Tensor* tokens = g.new_input(DType::I32, {9});
    Tensor* rows = g.get_rows(table, tokens);
    CHECK(shape(rows) == std::vector<int64_t>{256, 9, 1, 1});
    CHECK(rows->type == DType::F32);
    CHECK(rows->src[0] == table);
    CHECK(rows->src[1] == tokens);

    Tensor* a = g.new_tensor(DType::F32, {10, 4, 3});
    Tensor* top = g.argsort_top_k(a, 2);
    CHECK(shape(top) == std::vector<int64_t>{2, 4, 3, 1});
    CHECK(top->type == DType::I32);
    CHECK(argsort_top_k_k(*top) == 2);

    Tensor* b = g.new_tensor(DType::F32, {10, 5, 3});
    Tensor* cat = g.concat(a, b, 1);
    CHECK(shape(cat) == std::vector<int64_t>{10, 9, 3, 1});
    CHECK(concat_dim(*cat) == 1);

    Tensor* q = g.new_tensor(DType::F32, {64, 8, 5});
    Tensor* k = g.new_tensor(DType::F16, {64, 32, 2});
    Tensor* v = g.new_tensor(DType::F16, {48, 32, 2});
    Tensor* mask = g.new_tensor(DType::F16, {32, 8});
    Tensor* fa = g.flash_attn(q, k, v, mask, 0.125f);
    CHECK(shape(fa) == std::vector<int64_t>{48, 8, 5, 1});
    CHECK(flash_attn_scale(*fa) == 0.125f);
    CHECK(fa->src[3] == mask);
    CHECK(g.flash_attn(q, k, v, nullptr, 1.0f)->src[3] == nullptr);

    Tensor* bias = g.new_tensor(DType::F32, {10});
    Tensor* sum = g.add(a, bias);
    CHECK(shape(sum) == shape(a));
    CHECK(sum->is_contiguous());
    CHECK(shape(g.cont(g.transpose(a))) == std::vector<int64_t>{4, 10, 3, 1});
}

TEST_CASE("graph: parameters land where the accessors read them") {
    Graph g;
    Tensor* a = g.new_tensor(DType::F32, {128, 4, 6});
    Tensor* s = g.scale(a, 0.5f, -2.0f);
    CHECK(scale_param_s(*s) == 0.5f);
    CHECK(scale_param_bias(*s) == -2.0f);
    CHECK(rms_norm_eps(*g.rms_norm(a, 1e-6f)) == 1e-6f);
    Tensor* sm = g.soft_max(a, nullptr, 0.25f);
    CHECK(soft_max_scale(*sm) == 0.25f);
    CHECK(sm->src[1] == nullptr);

    RopeParams p;
    p.n_dims = 64;
    p.mode = RopeMode::Neox;
    p.n_ctx_orig = 4096;
    p.freq_base = 1e6f;
    p.freq_scale = 0.25f;
    p.ext_factor = 1.0f;
    p.attn_factor = 1.1f;
    p.beta_fast = 24.0f;
    p.beta_slow = 2.0f;
    Tensor* pos = g.new_input(DType::I32, {6});
    Tensor* freq = g.new_tensor(DType::F32, {32});
    Tensor* r = g.rope(a, pos, freq, p);
    CHECK(shape(r) == shape(a));
    CHECK(r->src[2] == freq);
    const RopeParams back = rope_params(*r);
    CHECK(back.n_dims == 64);
    CHECK(back.mode == RopeMode::Neox);
    CHECK(back.n_ctx_orig == 4096);
    CHECK(back.freq_base == 1e6f);
    CHECK(back.freq_scale == 0.25f);
    CHECK(back.ext_factor == 1.0f);
    CHECK(back.attn_factor == 1.1f);
    CHECK(back.beta_fast == 24.0f);
    CHECK(back.beta_slow == 2.0f);
}

TEST_CASE("graph: views share memory and point at the owner") {
    Graph g;
    Tensor* a = g.new_tensor(DType::F32, {8, 6, 4}, "a");
    Tensor* r = g.reshape(a, {48, 4});
    CHECK(r->view_src == a);
    CHECK(r->view_offset == 0);
    CHECK(r->is_contiguous());

    // A view of a view: offsets add up, view_src is the owner.
    Tensor* v1 = g.view(a, {8, 6}, {a->nb[1]}, a->nb[2]);  // the second 8x6 slice
    Tensor* v2 = g.view(v1, {4, 2}, {v1->nb[1]}, 3 * v1->nb[1] + 2 * 4);  // rows 3-4, cols 2-5
    CHECK(v1->view_src == a);
    CHECK(v2->view_src == a);
    CHECK(v2->view_offset == a->nb[2] + 3 * a->nb[1] + 8);
    CHECK(v2->nb[1] == a->nb[1]);
    CHECK_FALSE(v2->is_contiguous());

    // permute: source dim i goes to position axis_i.
    Tensor* p = g.permute(a, 2, 0, 1, 3);
    CHECK(shape(p) == std::vector<int64_t>{6, 4, 8, 1});
    CHECK(p->nb[2] == a->nb[0]);
    CHECK(p->nb[0] == a->nb[1]);
    CHECK(p->nb[1] == a->nb[2]);
    CHECK(p->view_src == a);
    Tensor* t = g.transpose(p);
    CHECK(t->op == Op::Transpose);
    CHECK(shape(t) == std::vector<int64_t>{4, 6, 8, 1});
    CHECK(t->nb[0] == p->nb[1]);
    CHECK(t->view_src == a);

    // A view over existing memory resolves at once.
    std::vector<float> memory(48 * 4);
    Tensor like;
    const int64_t ne[] = {48, 4};
    tensor_set_shape(like, DType::F32, ne, 2);
    like.data = memory.data();
    Tensor* wt = g.new_weight(like);
    CHECK((wt->flags & kTensorWeight) != 0);
    Tensor* row2 = g.view(wt, {48}, {}, 2 * wt->nb[1]);
    CHECK(row2->data == memory.data() + 96);

    // cpy stands for its destination's memory but is computed.
    Tensor* src = g.new_tensor(DType::F32, {4, 2});
    Tensor* c = g.cpy(src, v2);
    CHECK(c->op == Op::Cpy);
    CHECK(c->view_src == a);
    CHECK(c->view_offset == v2->view_offset);
    CHECK(c->src[0] == src);
    CHECK(c->src[1] == v2);
    CHECK_FALSE(op_is_view(c->op));
}

TEST_CASE("graph: build_forward orders every node after its sources, once") {
    Graph g;
    Tensor* x = g.new_input(DType::F32, {16, 3});
    Tensor* w = g.new_tensor(DType::F32, {16, 16});
    Tensor* h = g.mul_mat(w, x);
    Tensor* n = g.rms_norm(h, 1e-5f);
    Tensor* skip = g.add(n, x);
    Tensor* view = g.view(skip, {16}, {}, 0);
    Tensor* out1 = g.scale(view, 2.0f);
    Tensor* out2 = g.silu(skip);
    g.build_forward(out1);
    g.build_forward(out2);
    g.build_forward(out2);  // already there: adds nothing

    CHECK((out1->flags & kTensorOutput) != 0);
    CHECK((out2->flags & kTensorOutput) != 0);
    CHECK(g.nodes().size() == 6);
    CHECK(g.leaves().size() == 2);
    std::unordered_map<const Tensor*, size_t> index;
    for (size_t i = 0; i < g.nodes().size(); ++i) index[g.nodes()[i]] = i;
    CHECK(index.size() == g.nodes().size());
    for (const Tensor* node : g.nodes()) {
        for (const Tensor* s : node->src)
            if (s && !s->is_leaf()) CHECK(index.at(s) < index.at(node));
        if (node->view_src) CHECK(index.at(node->view_src) < index.at(node));
    }
    CHECK(index.at(out1) < index.at(out2));  // outputs in the order given
}

TEST_CASE("graph: a deep chain builds without recursion trouble") {
    Graph g;
    Tensor* x = g.new_input(DType::F32, {4});
    Tensor* t = x;
    for (int i = 0; i < 200000; ++i) t = g.scale(t, 1.0f);
    g.build_forward(t);
    CHECK(g.nodes().size() == 200000);
    CHECK(g.nodes().back() == t);
    CHECK(g.leaves().size() == 1);
}

TEST_CASE("graph: wrong shapes fail the builder asserts") {
    auto builds = [](const std::function<void(Graph&)>& f) {
        return !dies([&] {
            Graph g;
            f(g);
        });
    };
    // controls: the same calls with right shapes survive
    CHECK(builds([](Graph& g) { g.mul_mat(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {8, 2})); }));
    CHECK(builds([](Graph& g) { g.reshape(g.new_tensor(DType::F32, {8, 4}), {32}); }));

    CHECK_FALSE(builds([](Graph& g) { g.mul_mat(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {6, 2})); }));
    CHECK_FALSE(builds([](Graph& g) {
        g.mul_mat(g.new_tensor(DType::F32, {8, 4, 3}), g.new_tensor(DType::F32, {8, 2, 4}));
    }));
    CHECK_FALSE(builds([](Graph& g) { g.add(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {3})); }));
    CHECK_FALSE(builds([](Graph& g) { g.reshape(g.new_tensor(DType::F32, {8, 4}), {31}); }));
    CHECK_FALSE(builds([](Graph& g) { g.reshape(g.transpose(g.new_tensor(DType::F32, {8, 4})), {32}); }));
    CHECK_FALSE(builds([](Graph& g) {
        Tensor* a = g.new_tensor(DType::F32, {8, 4});
        g.view(a, {8, 2}, {a->nb[1]}, 3 * a->nb[1]);  // rows 3..4 of 4
    }));
    CHECK_FALSE(builds([](Graph& g) { g.permute(g.new_tensor(DType::F32, {8, 4}), 0, 0, 2, 3); }));
    CHECK_FALSE(builds([](Graph& g) { g.argsort_top_k(g.new_tensor(DType::F32, {8, 4}), 9); }));
    CHECK_FALSE(builds([](Graph& g) {
        g.concat(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {7, 3}), 1);
    }));
    CHECK_FALSE(builds([](Graph& g) {
        g.get_rows(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {2}));
    }));
    CHECK_FALSE(builds([](Graph& g) {
        RopeParams p;
        p.n_dims = 10;
        g.rope(g.new_tensor(DType::F32, {8, 2, 3}), g.new_tensor(DType::I32, {3}), nullptr, p);
    }));
    CHECK_FALSE(builds([](Graph& g) {
        g.flash_attn(g.new_tensor(DType::F32, {8, 3, 2}), g.new_tensor(DType::F16, {8, 5, 2}),
                     g.new_tensor(DType::F16, {8, 5, 2}), nullptr, 1.0f);  // 3 heads over 2 kv heads
    }));
    CHECK_FALSE(builds([](Graph& g) {
        g.soft_max(g.new_tensor(DType::F32, {8, 4}), g.new_tensor(DType::F32, {8, 3}), 1.0f);  // mask too short
    }));
}
