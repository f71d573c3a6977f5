// `moelite perplexity -m FILE (-f text.txt | --tokens-file F) [--ctx N] [--chunks K]`:
// perplexity as llama.cpp's perplexity tool measures it (models/perplexity.h),
// the running value after each chunk and the final estimate with its error.
// A text is tokenized with the model's own tokenizer (BOS at the start of
// every chunk when the model adds one); --tokens-file takes ids as they are
// (no BOS added), and works with vocab-less models too.
//
// KL divergence, in two runs:
//   moelite perplexity -m ref.gguf -f text.txt --kl-divergence-base ref.logprobs
//     also saves the reference log-probabilities (models/logprob_file.h);
//   moelite perplexity -m quant.gguf --kl-divergence --kl-divergence-base ref.logprobs
//     evaluates the saved tokens again with another model and reports both
//     perplexities, the KL divergence and how often the top token agrees.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/common.h"
#include "core/error.h"
#include "models/perplexity.h"

namespace moelite::app {
namespace {

constexpr int64_t kDefaultCtx = 512;

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail("%s: cannot read", path.c_str());
    return text;
}

void print_progress(const PerplexityProgress& p, bool kld) {
    if (kld) {
        std::printf("[%lld/%lld] PPL %.4f  mean KLD %.6f  same top %.2f %%  (%.2f s)\n", (long long)p.chunk,
                    (long long)p.n_chunks, p.ppl, p.kld_mean, 100.0 * p.same_top, p.seconds);
    } else {
        std::printf("[%lld]%.4f,", (long long)p.chunk, p.ppl);
        if (p.chunk == p.n_chunks) std::printf("\n");
    }
    std::fflush(stdout);
}

nlohmann::ordered_json ppl_json(const PerplexityResult& r) {
    return {{"ppl", r.ppl},     {"ppl_error", r.ppl_error}, {"mean_nll", r.mean_nll},
            {"n_ctx", r.n_ctx}, {"n_chunks", r.n_chunks},   {"count", r.count}};
}

void print_kld(const KldResult& r, bool json) {
    const auto& k = r.kld_sorted;
    if (json) {
        nlohmann::ordered_json j;
        j["ppl"] = ppl_json(r.ppl);
        j["ppl_base"] = ppl_json(r.ppl_base);
        j["log_ppl_ratio"] = r.log_ppl_ratio;
        j["log_ppl_ratio_error"] = r.log_ppl_ratio_error;
        j["log_ppl_correlation"] = r.log_ppl_correlation;
        j["kld_mean"] = r.kld_mean;
        j["kld_error"] = r.kld_error;
        j["kld_max"] = percentile_of_sorted(k, 1.0);
        j["kld_p99"] = percentile_of_sorted(k, 0.99);
        j["kld_median"] = percentile_of_sorted(k, 0.5);
        j["kld_min"] = percentile_of_sorted(k, 0.0);
        j["same_top"] = r.same_top;
        j["same_top_error"] = r.same_top_error;
        j["delta_p_mean"] = r.dp_mean;
        j["delta_p_error"] = r.dp_error;
        j["delta_p_rms"] = r.dp_rms;
        std::printf("%s\n", j.dump(2).c_str());
        return;
    }
    std::printf("\n====== Perplexity statistics ======\n");
    std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", r.ppl.ppl, r.ppl.ppl_error);
    std::printf("Mean PPL(base)                : %10.6f ± %10.6f\n", r.ppl_base.ppl, r.ppl_base.ppl_error);
    std::printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r.log_ppl_correlation);
    std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r.log_ppl_ratio, r.log_ppl_ratio_error);
    std::printf("\n====== KL divergence statistics ======\n");
    std::printf("Mean    KLD: %10.6f ± %10.6f\n", r.kld_mean, r.kld_error);
    std::printf("Maximum KLD: %10.6f\n", percentile_of_sorted(k, 1.0));
    std::printf("99.9%%   KLD: %10.6f\n", percentile_of_sorted(k, 0.999));
    std::printf("99.0%%   KLD: %10.6f\n", percentile_of_sorted(k, 0.99));
    std::printf("Median  KLD: %10.6f\n", percentile_of_sorted(k, 0.5));
    std::printf("Minimum KLD: %10.6f\n", percentile_of_sorted(k, 0.0));
    std::printf("\n====== Token probability statistics ======\n");
    std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * r.dp_mean, 100.0 * r.dp_error);
    std::printf("RMS     Δp: %6.3f %%\n", 100.0 * r.dp_rms);
    std::printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * r.same_top, 100.0 * r.same_top_error);
}

int run_perplexity(int argc, char** argv) {
    cxxopts::Options opts("moelite perplexity",
                          "Perplexity of a model on a text (llama.cpp's method), and KL divergence against a "
                          "reference model's saved log-probabilities.");
    add_model_options(opts);
    opts.add_options()("f,file", "text file (tokenized with the model's tokenizer)", cxxopts::value<std::string>())(
        "tokens-file", "whitespace-separated token ids instead of a text", cxxopts::value<std::string>())(
        "chunks", "chunks to evaluate (default: all the text fills)", cxxopts::value<int64_t>()->default_value("0"))(
        "kl-divergence-base", "reference log-probabilities: written, or with --kl-divergence read",
        cxxopts::value<std::string>())("kl-divergence", "compare with the reference in --kl-divergence-base")(
        "kl-divergence-type", "value type of a written reference: f16 or f32",
        cxxopts::value<std::string>()->default_value("f16"))("json", "print the result as JSON")("h,help",
                                                                                                 "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf(
            "%s\nThe context (--ctx) defaults to %lld tokens per chunk; the second half of each chunk "
            "is scored.\n",
            opts.help().c_str(), (long long)kDefaultCtx);
        return 0;
    }
    const bool json = args.count("json") > 0;
    const bool kld_mode = args.count("kl-divergence") > 0;
    const std::string base_path = args.count("kl-divergence-base") ? args["kl-divergence-base"].as<std::string>() : "";
    if (kld_mode && base_path.empty()) fail("--kl-divergence needs --kl-divergence-base FILE (the saved reference)");
    const std::string type_name = args["kl-divergence-type"].as<std::string>();
    if (type_name != "f16" && type_name != "f32") fail("--kl-divergence-type must be f16 or f32");
    const LogprobType save_type = type_name == "f32" ? LogprobType::F32 : LogprobType::F16;
    if (!kld_mode && args.count("file") == args.count("tokens-file"))
        fail("give the text with exactly one of -f/--file and --tokens-file");
    if (kld_mode && (args.count("file") || args.count("tokens-file")))
        fail("--kl-divergence evaluates the tokens saved in the reference file: drop -f/--tokens-file");

    // Read token ids before loading the model: a missing file fails fast.
    std::vector<int32_t> tokens;
    if (args.count("tokens-file")) tokens = read_token_file(args["tokens-file"].as<std::string>());
    if (args.count("file") && !std::ifstream(args["file"].as<std::string>()))
        fail("%s: cannot open: %s", args["file"].as<std::string>().c_str(), std::strerror(errno));

    LoadedModel lm = load_model(args);
    PerplexityOptions po;
    po.session = session_options(args);
    const int64_t ctx_flag = args["ctx"].as<int64_t>();
    po.n_ctx = ctx_flag > 0 ? ctx_flag : kDefaultCtx;
    po.n_chunks = args["chunks"].as<int64_t>();
    if (po.n_chunks < 0) fail("--chunks must not be negative");
    if (args.count("file")) {
        // As llama.cpp: the file's bytes tokenized whole, BOS first when the
        // model adds one, special-token text left as text; each chunk then
        // starts with BOS.
        const std::string path = args["file"].as<std::string>();
        const Tokenizer* tok = lm.model->tokenizer();
        if (!tok) fail("%s has no tokenizer: give token ids with --tokens-file", lm.model->path().c_str());
        tokens = tok->encode(read_text_file(path), tok->add_bos(), false);
        if (tok->add_bos() && tok->bos_id() >= 0) po.bos_id = tok->bos_id();
        if (!json) std::fprintf(stderr, "moelite perplexity: %s: %zu tokens\n", path.c_str(), tokens.size());
    }

    const auto progress = [&](const PerplexityProgress& p) {
        if (!json) print_progress(p, kld_mode);
    };
    if (kld_mode) {
        LogprobReader peek(base_path);  // validates the file before anything runs
        if (ctx_flag > 0 && ctx_flag != peek.header().n_ctx)
            fail("%s: saved with a context of %lld tokens; --ctx %lld differs (omit it)", base_path.c_str(),
                 (long long)peek.header().n_ctx, (long long)ctx_flag);
        if (!json)
            std::fprintf(stderr, "moelite perplexity: %lld chunks of %lld tokens from %s\n",
                         (long long)peek.header().n_chunks, (long long)peek.header().n_ctx, base_path.c_str());
        const KldResult r = compute_kl_divergence(lm.model, *lm.cpu, base_path, po, progress);
        print_kld(r, json);
        return 0;
    }
    const PerplexityResult r = compute_perplexity(lm.model, *lm.cpu, tokens, po, base_path, save_type, progress);
    if (json) {
        nlohmann::ordered_json j = ppl_json(r);
        if (!base_path.empty()) j["kl_divergence_base"] = base_path;
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
        if (!base_path.empty()) std::fprintf(stderr, "moelite perplexity: reference saved to %s\n", base_path.c_str());
    }
    return 0;
}

CommandRegistration reg("perplexity", "perplexity of a model on a text, and KL divergence against a reference",
                        run_perplexity);

}  // namespace
}  // namespace moelite::app
