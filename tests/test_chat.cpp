// Chat: thinking split from the answer, history without thinking, prefix
// reuse across turns, and `moelite chat` driven through a real terminal (a pty):
// typed input, streamed tokens, Ctrl-C stopping an answer without leaving.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "models/chat.h"
#include "models/model.h"
#include "models/synth.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

std::vector<std::pair<std::string, bool>> split(const std::vector<std::string>& pieces, bool start_thinking) {
    std::vector<std::pair<std::string, bool>> out;
    ThinkSplitter s(start_thinking);
    auto emit = [&](const std::string& t, bool thinking) {
        if (!out.empty() && out.back().second == thinking) {
            out.back().first += t;
        } else {
            out.push_back({t, thinking});
        }
    };
    for (const auto& p : pieces) s.feed(p, emit);
    s.flush(emit);
    return out;
}

}  // namespace

TEST_CASE("chat: thinking is split from the answer, tags split across pieces included") {
    auto parts = split({"<thi", "nk>I wonder", "</th", "ink>\n\nAnswer"}, false);
    REQUIRE(parts.size() == 2);
    CHECK(parts[0] == std::make_pair(std::string("I wonder"), true));
    CHECK(parts[1] == std::make_pair(std::string("\n\nAnswer"), false));
    // A template that pre-fills "<think>\n": the reply starts inside the thought.
    parts = split({"hmm", "</think>", "ok"}, true);
    REQUIRE(parts.size() == 2);
    CHECK(parts[0] == std::make_pair(std::string("hmm"), true));
    CHECK(parts[1] == std::make_pair(std::string("ok"), false));
    // Text that only looks like the start of a tag is released.
    parts = split({"a <th", "e> b"}, false);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].first == "a <the> b");
}

TEST_CASE("chat: the history keeps the answer only") {
    CHECK(strip_thinking("<think>\nsecret\n</think>\n\nThe answer.") == "The answer.");
    CHECK(strip_thinking("plain") == "plain");
    CHECK(strip_thinking("<think>never finished").empty());
}

TEST_CASE("chat: turns reuse the tokens the session holds") {
    test::TempDir dir;
    const std::string path = (dir / "demo.gguf").string();
    SynthOptions so;
    so.type = DType::Q8_0;
    so.tokenizer = synth_demo_tokenizer();
    synth_write_model(path, *synth_preset("demo"), so);
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(path, cpu);
    REQUIRE(model->tokenizer() != nullptr);
    Session session(model, cpu, SessionOptions{512, 64, DType::F16});
    Chat chat(session, *model->tokenizer(), model->chat_template(), SamplerParams::greedy());
    chat.set_system("Be brief.");
    GenerateOptions go;
    go.max_tokens = 8;
    chat.reply("first", go, [](const std::string&, bool) {});
    const std::string rendered = chat.render_prompt();
    CHECK(rendered.find("Be brief.<｜User｜>first<｜Assistant｜>") != std::string::npos);
    const auto before = session.stats();
    chat.reply("second", go, [](const std::string&, bool) {});
    // The second turn evaluates only what is new, not the whole conversation again.
    const int64_t new_prompt = session.stats().prompt_tokens - before.prompt_tokens;
    CHECK(new_prompt > 0);
    CHECK(new_prompt < int64_t(model->tokenizer()->encode(chat.render_prompt(), false, true).size()) / 2);
    REQUIRE(chat.messages().size() == 4);
    CHECK(chat.messages()[2]["content"] == "second");
    CHECK(chat.messages()[3]["content"].get<std::string>().find("<think>") == std::string::npos);
    CHECK_THROWS(chat.set_messages(nlohmann::ordered_json::parse(R"([{"role": "robot", "content": "x"}])")));
}

namespace {

// Reads from fd until `needle` appears in *seen or the deadline passes.
bool read_until(int fd, std::string* seen, const std::string& needle, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (seen->find(needle) == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, int(left.count())) <= 0) continue;
        char buf[4096];
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return seen->find(needle) != std::string::npos;
        seen->append(buf, size_t(n));
    }
    return true;
}

}  // namespace

TEST_CASE("chat: a real terminal session — typing, streaming, Ctrl-C, commands") {
    test::TempDir dir;
    const std::string path = (dir / "demo.gguf").string();
    SynthOptions so;
    so.type = DType::Q8_0;
    so.tokenizer = synth_demo_tokenizer();
    synth_write_model(path, *synth_preset("demo"), so);
    const std::string binary = test::moelite_binary().string();

    int master = -1;
    const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Unlimited answers and EOS never sampled (temperature high, min-p off)
        // would be long; Ctrl-C is what ends this one.
        execl(binary.c_str(), binary.c_str(), "chat", "-m", path.c_str(), "-t", "1", "--seed", "7", "--color", "never",
              "--ctx", "2048", "--ignore-eos", static_cast<char*>(nullptr));
        _exit(127);
    }
    std::string seen;
    REQUIRE(read_until(master, &seen, "> ", 20));
    INFO("terminal so far: " << seen);
    CHECK(seen.find("random weights") != std::string::npos);

    const std::string typed = "/help\n";
    REQUIRE(write(master, typed.data(), typed.size()) == ssize_t(typed.size()));
    CHECK(read_until(master, &seen, "/reset", 10));

    seen.clear();
    const std::string question = "tell me a long story\n";
    REQUIRE(write(master, question.data(), question.size()) == ssize_t(question.size()));
    // Tokens stream: output appears before the answer ends.
    CHECK(read_until(master, &seen, "story", 10));  // the echo of what was typed
    const size_t echoed = seen.size();
    std::string more = seen;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (more.size() < echoed + 20 && std::chrono::steady_clock::now() < until) read_until(master, &more, "\x01", 0.2);
    CHECK(more.size() >= echoed + 20);

    // Ctrl-C stops the answer and brings the prompt back; the program stays.
    const char ctrl_c = 3;
    REQUIRE(write(master, &ctrl_c, 1) == 1);
    seen = more;
    CHECK(read_until(master, &seen, "(stopped)", 15));
    CHECK(read_until(master, &seen, "> ", 10));

    const std::string quit = "/exit\n";
    REQUIRE(write(master, quit.data(), quit.size()) == ssize_t(quit.size()));
    int status = 0;
    for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; ++i) usleep(100000);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL("moelite chat did not exit after /exit");
    }
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    close(master);
}
