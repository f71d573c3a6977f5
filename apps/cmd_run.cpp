// `moelite run -m FILE -p PROMPT [-n N] [--chat] [--json]`: one shot, for
// scripts. The prompt is used as is (BOS added when the model asks), or with
// --chat rendered through the model's chat template as one user message.
// Text streams to stdout; --json prints one JSON object at the end instead.
// --memory reports resident memory against the weight bytes the run read
// (models/weight_use.h), for bench/moe-rss.sh.
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "apps/commands.h"
#include "apps/common.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/mmap.h"
#include "core/process_memory.h"
#include "models/chat.h"
#include "models/generate.h"
#include "models/weight_use.h"

namespace moelite::app {
namespace {

struct MemoryReport {
    WeightUse use;
    ProcessMemory process;
    size_t file_cached = 0;  // bytes of the model file in the page cache
};

MemoryReport memory_report(const Model& model, const Session& session) {
    MemoryReport m;
    m.use = weight_use(model, session.expert_stats(), session.tokens());
    m.process = process_memory();
    if (const MappedFile* map = model.file().mapping()) m.file_cached = map->resident_bytes(0, map->size());
    return m;
}

nlohmann::json memory_json(const MemoryReport& m) {
    return {{"file_bytes", m.use.file_bytes},
            {"weight_bytes", m.use.weight_bytes},
            {"touched_bytes", m.use.touched_bytes()},
            {"dense_bytes", m.use.dense_bytes},
            {"embedding_bytes", m.use.embedding_bytes},
            {"expert_bytes", m.use.expert_bytes},
            {"experts_chosen", m.use.experts_chosen},
            {"experts_total", m.use.experts_total},
            {"file_cached_bytes", m.file_cached},
            {"vm_hwm", m.process.vm_hwm},
            {"vm_rss", m.process.vm_rss},
            {"rss_anon", m.process.rss_anon},
            {"rss_file", m.process.rss_file}};
}

void print_memory(const MemoryReport& m) {
    auto mib = [](auto bytes) { return double(bytes) / (1024.0 * 1024.0); };
    const WeightUse& u = m.use;
    std::fprintf(stderr,
                 "memory: file %.1f MiB, weights %.1f MiB; read %.1f MiB (dense %.1f, embedding rows %.1f, "
                 "experts %.1f: %lld of %lld chosen)\n",
                 mib(u.file_bytes), mib(u.weight_bytes), mib(u.touched_bytes()), mib(u.dense_bytes),
                 mib(u.embedding_bytes), mib(u.expert_bytes), (long long)u.experts_chosen, (long long)u.experts_total);
    std::fprintf(stderr,
                 "memory: resident peak %.1f MiB, now %.1f MiB (file-backed %.1f, anonymous %.1f); "
                 "page cache holds %.1f MiB of the file\n",
                 mib(m.process.vm_hwm), mib(m.process.vm_rss), mib(m.process.rss_file), mib(m.process.rss_anon),
                 mib(m.file_cached));
}

int run_run(int argc, char** argv) {
    cxxopts::Options opts("moelite run", "Generate text from a prompt, once.");
    add_model_options(opts);
    add_sampling_options(opts);
    opts.add_options()("p,prompt", "the prompt", cxxopts::value<std::string>())(
        "n,n-predict", "tokens to generate (-1: until the context is full)",
        cxxopts::value<int64_t>()->default_value("256"))(
        "chat", "render the prompt as a user message with the model's chat template")(
        "ignore-eos", "keep generating past end-of-generation tokens")(
        "system", "system prompt (with --chat)", cxxopts::value<std::string>()->default_value(""))(
        "expert-stats", "print how often each expert of each MoE layer was chosen")(
        "memory", "print resident memory against the weight bytes the run read")(
        "mmap-random", "advise random access on the model file (no read-ahead around page faults)")(
        "json", "print one JSON object with the text, tokens and timings")("h,help", "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", opts.help().c_str());
        return 0;
    }
    if (!args.count("prompt")) fail("-p/--prompt is required");
    LoadedModel lm = load_model(args);
    const MappedFile* mapping = lm.model->file().mapping();
    if (args.count("mmap-random") && mapping) mapping->advise_random(0, mapping->size());
    const Tokenizer* tok = lm.model->tokenizer();
    if (!tok) fail("%s has no tokenizer: use 'moelite logits' with token ids", lm.model->path().c_str());
    Session session(lm.model, *lm.cpu, session_options(args));
    const SamplerParams sp = sampling_params(args, *lm.model);
    GenerateOptions go;
    go.max_tokens = args["n-predict"].as<int64_t>();
    go.ignore_eos = args.count("ignore-eos") > 0;
    const bool json = args.count("json") > 0;
    auto stream = [&](const std::string& text, bool) {
        if (!json) {
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
        }
    };

    GenerateResult r;
    std::string thinking, answer;
    if (args.count("chat")) {
        if (lm.model->chat_template().empty()) fail("%s has no chat template", lm.model->path().c_str());
        Chat chat(session, *tok, lm.model->chat_template(), sp);
        chat.set_system(args["system"].as<std::string>());
        r = chat.reply(args["prompt"].as<std::string>(), go, [&](const std::string& text, bool in_thought) {
            (in_thought ? thinking : answer) += text;
            stream(text, in_thought);
        });
    } else {
        Sampler sampler(sp);
        const std::vector<int32_t> prompt = tok->encode(args["prompt"].as<std::string>(), tok->add_bos(), true);
        r = generate(session, sampler, *tok, prompt, go, [&](const std::string& text) {
            answer += text;
            stream(text, false);
            return true;
        });
    }
    if (r.stop == StopReason::ContextFull && r.tokens.empty())  // nothing was evaluated
        fail("%s: the prompt does not fit the context of %lld tokens (-c/--ctx)", lm.model->path().c_str(),
             (long long)session.n_ctx());
    const SessionStats& st = session.stats();
    const ExpertStats& es = session.expert_stats();
    const bool expert_stats = args.count("expert-stats") > 0 && es.n_expert() > 0;
    if (args.count("expert-stats") && es.n_expert() == 0) fail("%s has no experts", lm.model->path().c_str());
    std::optional<MemoryReport> memory;
    if (args.count("memory")) memory = memory_report(*lm.model, session);
    if (json) {
        nlohmann::json out = {{"text", r.text},
                              {"answer", answer},
                              {"thinking", thinking},
                              {"tokens", r.tokens},
                              {"stop", stop_reason_name(r.stop)},
                              {"prompt_tokens", st.prompt_tokens},
                              {"prompt_seconds", st.prompt_seconds},
                              {"generated_tokens", st.decode_tokens},
                              {"generation_seconds", st.decode_seconds}};
        if (expert_stats) {
            nlohmann::json layers = nlohmann::json::array();
            for (int64_t l = 0; l < es.n_layer(); ++l) {
                std::vector<uint64_t> counts;
                for (int64_t e = 0; e < es.n_expert(); ++e) counts.push_back(es.count(l, e));
                layers.push_back(counts);
            }
            out["expert_counts"] = layers;
        }
        if (memory) out["memory"] = memory_json(*memory);
        std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        std::printf("\n");
        if (expert_stats) {
            // One line per MoE layer: the experts by use, most used first.
            std::fprintf(stderr, "expert use (layer: expert x count, most used first):\n");
            for (int64_t l = 0; l < es.n_layer(); ++l) {
                std::vector<std::pair<uint64_t, int64_t>> order;
                for (int64_t e = 0; e < es.n_expert(); ++e)
                    if (es.count(l, e)) order.push_back({es.count(l, e), e});
                if (order.empty()) continue;
                std::sort(order.begin(), order.end(), [](auto& a, auto& b) {
                    return a.first > b.first || (a.first == b.first && a.second < b.second);
                });
                std::fprintf(stderr, "  %3lld:", (long long)l);
                for (const auto& [c, e] : order)
                    std::fprintf(stderr, " %lldx%llu", (long long)e, (unsigned long long)c);
                std::fprintf(stderr, "  (%zu of %lld used)\n", order.size(), (long long)es.n_expert());
            }
        }
        if (memory) print_memory(*memory);
    }
    return 0;
}

CommandRegistration reg("run", "generate text from a prompt, once (for scripts)", run_run);

}  // namespace
}  // namespace moelite::app
