#include "apps/convert_cli.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "core/error.h"

namespace moelite::app {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
    g_interrupted.store(true);
}

std::string human(double bytes) {
    static const char* const kUnits[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 4) {
        bytes /= 1000.0;
        ++u;
    }
    return strprintf(u == 0 ? "%.0f %s" : "%.2f %s", bytes, kUnits[u]);
}

std::string clock_text(double s) {
    if (!(s >= 0) || s > 1e7) return "--:--";
    const long t = long(s + 0.5);
    return t >= 3600 ? strprintf("%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60)
                     : strprintf("%02ld:%02ld", t / 60, t % 60);
}

}  // namespace

void add_recipe_options(cxxopts::Options& options) {
    // clang-format off
    options.add_options()
        ("experts", "type of the stacked expert tensors (*_exps)", cxxopts::value<std::string>())
        ("attn", "type of the attention weights (attn_*)", cxxopts::value<std::string>())
        ("embed", "type of token_embd.weight", cxxopts::value<std::string>())
        ("override", "REGEX=TYPE: tensors whose name matches REGEX get TYPE (repeatable; the first match wins)",
         cxxopts::value<std::vector<std::string>>())
        ("t,threads", "quantization threads (default: all hardware threads)", cxxopts::value<std::string>()->default_value("0"))
        ("q,quiet", "no progress display");
    // clang-format on
}

ConvertOptions recipe_options_from(const cxxopts::ParseResult& args, const std::string& type_name) {
    ConvertOptions o;
    o.recipe = recipe_from_name(type_name, "--type");
    if (args.count("experts")) o.recipe.experts = recipe_tensor_type(args["experts"].as<std::string>(), "--experts");
    if (args.count("attn")) o.recipe.attn = recipe_tensor_type(args["attn"].as<std::string>(), "--attn");
    if (args.count("embed")) o.recipe.embed = recipe_tensor_type(args["embed"].as<std::string>(), "--embed");
    if (args.count("override"))
        for (const std::string& spec : args["override"].as<std::vector<std::string>>())
            o.recipe.overrides.push_back(recipe_override(spec));
    // Parsed here rather than by cxxopts: its integer parser trips a GCC 12 false warning.
    const std::string threads = args["threads"].as<std::string>();
    char* end = nullptr;
    const long n = std::strtol(threads.c_str(), &end, 10);
    if (threads.empty() || *end != '\0' || n < 0 || n > 1024)
        fail("--threads: '%s' is not a thread count (0 to 1024; 0 means all)", threads.c_str());
    o.n_threads = int(n);
    return o;
}

std::function<void(const ConvertProgress&)> make_progress_printer(const char* command) {
    struct State {
        bool tty = ::isatty(STDERR_FILENO) == 1;
        double last = -1;
        bool drawn = false;
        std::string command;
    };
    auto st = std::make_shared<State>();
    st->command = command;
    return [st](const ConvertProgress& p) {
        const bool final = p.tensors_done == p.tensors_total && p.tensor.empty();
        const double every = st->tty ? 0.1 : 5.0;
        if (!final && st->last >= 0 && p.seconds - st->last < every) return;
        st->last = p.seconds;
        const double frac = p.bytes_total ? double(p.bytes_read) / double(p.bytes_total) : 1.0;
        const double rate = p.seconds > 0 ? double(p.bytes_read) / p.seconds : 0.0;
        const double eta = rate > 0 ? double(p.bytes_total - std::min(p.bytes_read, p.bytes_total)) / rate : -1;
        const std::string stats =
            strprintf("%zu/%zu tensors, %s / %s read, %s/s, elapsed %s, ETA %s", p.tensors_done, p.tensors_total,
                      human(double(p.bytes_read)).c_str(), human(double(p.bytes_total)).c_str(), human(rate).c_str(),
                      clock_text(p.seconds).c_str(), final ? "00:00" : clock_text(eta).c_str());
        if (st->tty) {
            constexpr int kWidth = 30;
            const int filled = int(frac * kWidth + 0.5);
            std::string bar(size_t(filled), '#');
            bar.append(size_t(kWidth - filled), '.');
            std::fprintf(stderr, "\r\033[K[%s] %3.0f%% %s", bar.c_str(), frac * 100.0, stats.c_str());
            if (final) std::fputc('\n', stderr);
        } else {
            std::fprintf(stderr, "%s: %3.0f%% %s%s%s\n", st->command.c_str(), frac * 100.0, stats.c_str(),
                         p.tensor.empty() ? "" : ", at ", p.tensor.c_str());
        }
        std::fflush(stderr);
    };
}

const std::atomic<bool>* install_interrupt_flag() {
    struct sigaction sa = {};
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills at once
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    return &g_interrupted;
}

void print_report(const ConvertReport& r) {
    for (const std::string& n : r.notes) std::printf("note: %s\n", n.c_str());
    std::printf("wrote %s: %zu tensors,", r.output.c_str(), r.n_tensors);
    for (const auto& [type, count] : r.tensors_by_type) std::printf(" %s x%zu", type.c_str(), count);
    const double s = r.seconds > 0 ? r.seconds : 1e-9;
    std::printf("\nread %s, wrote %s of tensor data in %.2f s (%s/s in)\n", human(double(r.bytes_read)).c_str(),
                human(double(r.bytes_written)).c_str(), r.seconds, human(double(r.bytes_read) / s).c_str());
}

}  // namespace moelite::app
