// Chat: thinking split from the answer, history without thinking, prefix
// reuse across turns, and `moelite chat` driven through a real terminal (a pty):
// typed input, streamed tokens, Ctrl-C stopping an answer without leaving, line
// editing (the edited text is what is sent, history, paste, continued lines),
// and the terminal's settings as they were after it leaves.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <utmp.h>

#include "backends/cpu/cpu_backend.h"
#include "models/chat.h"
#include "models/model.h"
#include "models/synth.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

// The demo model (random weights, a real tokenizer and chat template) in dir.
std::string demo_model(const test::TempDir& dir) {
    const std::string path = (dir / "demo.gguf").string();
    SynthOptions so;
    so.type = DType::Q8_0;
    so.tokenizer = synth_demo_tokenizer();
    synth_write_model(path, *synth_preset("demo"), so);
    return path;
}

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
    const std::string path = demo_model(dir);
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

size_t count_of(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
    return n;
}

// Reads until `needle` has appeared `times` times in *seen.
bool read_until_count(int fd, std::string* seen, const std::string& needle, size_t times, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (count_of(*seen, needle) < times) {
        if (std::chrono::steady_clock::now() > end) return false;
        read_until(fd, seen, "\x01never", 0.1);
    }
    return true;
}

// `moelite chat` on a pty whose slave end this process keeps open too, so that
// the terminal's settings can be read while it runs and after it has left.
struct ChatTerminal {
    int master = -1, slave = -1;
    pid_t pid = -1;
    termios before{};
    std::string seen;

    explicit ChatTerminal(const std::string& model) {
        winsize ws = {};
        ws.ws_row = 24;
        ws.ws_col = 80;
        REQUIRE(openpty(&master, &slave, nullptr, nullptr, &ws) == 0);
        REQUIRE(tcgetattr(slave, &before) == 0);
        const std::string binary = test::moelite_binary().string();
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(master);
            if (login_tty(slave) != 0) _exit(126);
            // Answers never end by themselves (no limit, EOS ignored): Ctrl-C ends each one.
            execl(binary.c_str(), binary.c_str(), "chat", "-m", model.c_str(), "-t", "1", "--seed", "7", "--color",
                  "never", "--ctx", "2048", "--ignore-eos", static_cast<char*>(nullptr));
            _exit(127);
        }
    }
    ~ChatTerminal() {
        if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        close(master);
        close(slave);
    }

    void type(const std::string& keys) { REQUIRE(write(master, keys.data(), keys.size()) == ssize_t(keys.size())); }
    // The editor turns bracketed paste on each time it starts reading a line.
    bool wait_prompt(size_t nth) { return read_until_count(master, &seen, "\x1b[?2004h", nth, 20); }
    termios settings() const {
        termios t{};
        tcgetattr(slave, &t);
        return t;
    }
    // The exit status (128 + the signal when one ended it, as shells say), or -1 when it has
    // not exited within 10 s (the destructor kills it); what it wrote is in `seen`.
    int wait_exit() {
        for (int i = 0; i < 100; ++i) {
            int status = 0;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1;
                read_until(master, &seen, "\x01never", 0.3);  // what it wrote last
                return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
            }
            usleep(100000);
        }
        return -1;
    }
};

}  // namespace

TEST_CASE("chat: a real terminal session — typing, streaming, Ctrl-C, commands") {
    test::TempDir dir;
    ChatTerminal term(demo_model(dir));
    std::string& seen = term.seen;
    REQUIRE(read_until(term.master, &seen, "> ", 20));
    INFO("terminal so far: " << seen);
    CHECK(seen.find("random weights") != std::string::npos);

    term.type("/help\n");  // LF ends a line as Enter (CR) does
    CHECK(read_until(term.master, &seen, "/reset", 10));

    seen.clear();
    term.type("tell me a long story\n");
    // Tokens stream: output appears before the answer ends.
    CHECK(read_until(term.master, &seen, "story", 10));  // the echo of what was typed
    const size_t echoed = seen.size();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (seen.size() < echoed + 20 && std::chrono::steady_clock::now() < until)
        read_until(term.master, &seen, "\x01never", 0.2);
    CHECK(seen.size() >= echoed + 20);

    // Ctrl-C stops the answer and brings the prompt back; the program stays.
    term.type("\x03");
    CHECK(read_until(term.master, &seen, "(stopped)", 15));
    seen.erase(0, seen.find("(stopped)"));
    CHECK(read_until(term.master, &seen, "> ", 10));

    term.type("/exit\n");
    CHECK(term.wait_exit() == 0);
}

TEST_CASE("chat: line editing in a real terminal — the edited text is sent, history, paste, settings restored") {
    test::TempDir dir;
    ChatTerminal term(demo_model(dir));
    size_t prompts = 0;
    REQUIRE(term.wait_prompt(++prompts));
    INFO("terminal so far: " << term.seen);

    // Sends a message, checks that the answer streams with the terminal back in
    // its normal mode (so Ctrl-C is a signal), stops it with Ctrl-C.
    auto ask = [&](const std::string& keys) {
        const size_t raw_left = count_of(term.seen, "\x1b[?2004l");
        term.type(keys);
        REQUIRE(read_until_count(term.master, &term.seen, "\x1b[?2004l", raw_left + 1, 10));  // the editor is done
        const size_t start = term.seen.size();
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (term.seen.size() < start + 40 && std::chrono::steady_clock::now() < until)
            read_until(term.master, &term.seen, "\x01never", 0.1);
        CHECK(term.seen.size() >= start + 40);
        const termios during = term.settings();
        CHECK((during.c_lflag & ICANON) != 0);
        CHECK((during.c_lflag & ISIG) != 0);
        CHECK((during.c_lflag & ECHO) != 0);
        const size_t stopped = count_of(term.seen, "(stopped)");
        term.type("\x03");
        CHECK(read_until_count(term.master, &term.seen, "(stopped)", stopped + 1, 15));
        REQUIRE(term.wait_prompt(++prompts));
    };
    ask("hllo\x1b[D\x1b[D\x1b[De\r");  // Left three times, then the missing letter
    ask("\x1b[A\r");                   // Up: the same again
    ask("garbage\x15ok\r");            // Ctrl-U
    term.type("abandon\x03");          // Ctrl-C while typing: the line is dropped
    REQUIRE(term.wait_prompt(++prompts));
    CHECK(term.seen.find("abandon^C") != std::string::npos);
    term.type("\x03");  // on an empty line: a hint, and the chat stays
    REQUIRE(term.wait_prompt(++prompts));
    CHECK(term.seen.find("Ctrl-C again") != std::string::npos);
    ask("\x1b[200~line one\rline two\x1b[201~\r");  // a pasted block: one message
    term.type("first\\\r");                         // a line ending in '\' continues
    REQUIRE(term.wait_prompt(++prompts));
    ask("second\r");
    const std::string saved = (dir / "chat.json").string();
    term.type("/save " + saved + "\r");
    CHECK(read_until(term.master, &term.seen, "(saved", 10));
    REQUIRE(term.wait_prompt(++prompts));
    term.type("\x04");  // Ctrl-D on an empty line: leave
    CHECK(term.wait_exit() == 0);

    std::ifstream in(saved);
    REQUIRE(in);
    const auto messages = nlohmann::ordered_json::parse(in);
    std::vector<std::string> sent;
    for (const auto& m : messages)
        if (m["role"] == "user") sent.push_back(m["content"]);
    CHECK(sent == std::vector<std::string>{"hello", "hello", "ok", "line one\nline two", "first\nsecond"});

    const termios after = term.settings();
    CHECK(after.c_lflag == term.before.c_lflag);
    CHECK(after.c_iflag == term.before.c_iflag);
    CHECK(after.c_oflag == term.before.c_oflag);
    CHECK(std::memcmp(after.c_cc, term.before.c_cc, sizeof after.c_cc) == 0);
    const size_t paste_on = term.seen.rfind("\x1b[?2004h"), paste_off = term.seen.rfind("\x1b[?2004l");
    CHECK(paste_off != std::string::npos);
    CHECK(paste_off > paste_on);  // bracketed paste turned off again
}

TEST_CASE("chat: Ctrl-C twice on an empty line leaves, the terminal restored") {
    test::TempDir dir;
    ChatTerminal term(demo_model(dir));
    REQUIRE(term.wait_prompt(1));
    term.type("\x03");
    REQUIRE(term.wait_prompt(2));
    term.type("\x03");
    CHECK(term.wait_exit() == 0);
    const termios after = term.settings();
    CHECK(after.c_lflag == term.before.c_lflag);
    CHECK(after.c_iflag == term.before.c_iflag);
}

TEST_CASE("chat: SIGTERM while a line is being edited puts the terminal back") {
    test::TempDir dir;
    ChatTerminal term(demo_model(dir));
    REQUIRE(term.wait_prompt(1));
    term.type("half a line");
    CHECK(read_until(term.master, &term.seen, "line", 10));
    CHECK((term.settings().c_lflag & ICANON) == 0);  // raw while editing
    kill(term.pid, SIGTERM);
    CHECK(term.wait_exit() == 128 + SIGTERM);
    const termios after = term.settings();
    CHECK(after.c_lflag == term.before.c_lflag);
    CHECK(after.c_iflag == term.before.c_iflag);
    CHECK(after.c_oflag == term.before.c_oflag);
}
