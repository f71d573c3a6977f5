// `moelite chat -m FILE`: an interactive conversation in the terminal.
//
// Answers stream as they are generated; an R1 model's thinking is shown
// dimmed (or hidden with --hide-think) and kept out of the history. In a
// terminal, input is read with the line editor of apps/line_editor.h (raw mode
// only while reading, so Ctrl-C during an answer is a SIGINT that stops it and
// returns to the prompt); from a pipe, with plain getline. A line ending in '\'
// continues on the next line. Ctrl-D (or /exit) leaves. Commands: /reset,
// /system TEXT, /save FILE, /load FILE, /stats, /help, /exit.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/line_editor.h"
#include "core/error.h"
#include "models/chat.h"

namespace moelite::app {
namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

const char* kHelp =
    "commands:\n"
    "  /reset         forget the conversation\n"
    "  /system TEXT   set the system prompt (and reset)\n"
    "  /save FILE     save the conversation as JSON\n"
    "  /load FILE     load a conversation saved with /save\n"
    "  /stats         prompt and generation speed of the last answer\n"
    "  /exit          leave (or Ctrl-D on an empty line)\n"
    "A line ending in '\\' continues on the next line. Ctrl-C stops an answer.\n";

const char* kKeysHelp =
    "keys:\n"
    "  Left/Right, Ctrl-B/Ctrl-F          move by character\n"
    "  Alt-B/Alt-F, Ctrl-Left/Ctrl-Right  move by word\n"
    "  Home/End, Ctrl-A/Ctrl-E            start / end of the line\n"
    "  Backspace, Delete, Ctrl-D          delete a character\n"
    "  Ctrl-W, Alt-Backspace, Alt-D       delete a word (back, back, forward)\n"
    "  Ctrl-U / Ctrl-K                    delete to the start / end of the line; Ctrl-Y puts it back\n"
    "  Up/Down, Ctrl-P/Ctrl-N             earlier inputs of this chat\n"
    "  Alt-Enter                          a new line in the message (a paste keeps its lines too)\n"
    "  Ctrl-L                             clear the screen\n"
    "  Ctrl-C                             abandon the line; on an empty line twice: leave\n"
    "  Ctrl-Z                             suspend (fg to come back)\n";

// Reads one message (possibly several lines) from a pipe or file; false at end of input.
bool read_message_plain(std::string* out, bool tty) {
    out->clear();
    std::string line;
    bool first = true;
    for (;;) {
        if (tty) std::fputs(first ? "> " : "... ", stdout);
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) {
            if (std::cin.eof() && !first) return true;
            if (g_interrupted.exchange(false) && !std::cin.eof()) {  // Ctrl-C at the prompt: a fresh line
                std::cin.clear();
                std::fputs("\n", stdout);
                out->clear();
                first = true;
                continue;
            }
            return false;
        }
        first = false;
        if (!line.empty() && line.back() == '\\') {
            line.pop_back();
            *out += line + "\n";
            continue;
        }
        *out += line;
        return true;
    }
}

// Reads one message with the line editor; false at end of input (Ctrl-D on an
// empty line, or Ctrl-C twice on an empty line).
bool read_message_edited(std::string* out, LineEditor& editor) {
    out->clear();
    bool interrupted_empty = false;  // the last key was Ctrl-C on an empty line
    for (;;) {
        std::fflush(stdout);
        ReadResult r = editor.read_line(out->empty() ? "> " : "... ");
        if (r.status == ReadStatus::EndOfInput) {
            if (out->empty()) return false;
            std::fputs("\n", stdout);
            break;  // Ctrl-D after a continued line sends what is there
        }
        if (r.status == ReadStatus::Interrupted) {
            const bool empty = out->empty() && r.text.empty();
            if (empty && interrupted_empty) return false;
            if (empty) std::fputs("(Ctrl-C again, Ctrl-D or /exit to leave)\n", stdout);
            interrupted_empty = empty;
            out->clear();
            continue;
        }
        interrupted_empty = false;
        if (!r.text.empty() && r.text.back() == '\\') {
            r.text.pop_back();
            *out += r.text + "\n";
            continue;
        }
        *out += r.text;
        break;
    }
    editor.add_history(*out);
    return true;
}

int run_chat(int argc, char** argv) {
    cxxopts::Options opts("moelite chat", "Chat with a model in the terminal.");
    add_model_options(opts);
    add_sampling_options(opts);
    opts.add_options()("n,n-predict", "most tokens per answer (-1: no limit)", cxxopts::value<int64_t>()->default_value("-1"))(
        "ignore-eos", "keep generating past end-of-generation tokens")(
        "system", "system prompt", cxxopts::value<std::string>()->default_value(""))(
        "hide-think", "do not show the model's thinking")("show-speed", "print prompt and generation speed after each answer")(
        "color", "colour the output: auto, always, never", cxxopts::value<std::string>()->default_value("auto"))(
        "h,help", "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n%s%s", opts.help().c_str(), kHelp, kKeysHelp);
        return 0;
    }
    LoadedModel lm = load_model(args);
    const Tokenizer* tok = lm.model->tokenizer();
    if (!tok) fail("%s has no tokenizer, so it cannot chat", lm.model->path().c_str());
    if (lm.model->chat_template().empty()) fail("%s has no chat template", lm.model->path().c_str());
    Session session(lm.model, *lm.cpu, session_options(args));
    Chat chat(session, *tok, lm.model->chat_template(), sampling_params(args, *lm.model));
    chat.set_system(args["system"].as<std::string>());
    GenerateOptions go;
    go.max_tokens = args["n-predict"].as<int64_t>();
    go.ignore_eos = args.count("ignore-eos") > 0;
    const bool hide_think = args.count("hide-think") > 0;
    const bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    const char* term = std::getenv("TERM");
    const bool edit = tty && !(term && std::string(term) == "dumb");  // a dumb terminal cannot move the cursor
    const std::string color = args["color"].as<std::string>();
    const bool use_color = color == "always" || (color == "auto" && isatty(STDOUT_FILENO));
    const char* dim = use_color ? "\033[2m" : "";
    const char* plain = use_color ? "\033[0m" : "";

    const std::string name = lm.model->file().opt_string("general.name").value_or(lm.model->description());
    std::printf("moelite chat: %s (%s), context %lld tokens. /help for commands.\n", name.c_str(),
                lm.model->description().c_str(), (long long)session.n_ctx());
    if (lm.model->file().opt_bool("moelite.synthetic").value_or(false))
        std::printf("note: this model has random weights; its answers are noise (a demo of the machinery).\n");

    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: a blocked read returns

    std::optional<LineEditor> editor;
    if (edit) editor.emplace(STDIN_FILENO, STDOUT_FILENO);
    std::string message;
    while (editor ? read_message_edited(&message, *editor) : read_message_plain(&message, tty)) {
        if (message.empty()) continue;
        if (message[0] == '/') {
            std::istringstream cmd(message);
            std::string word, rest;
            cmd >> word;
            std::getline(cmd >> std::ws, rest);
            try {
                if (word == "/exit" || word == "/quit") break;
                if (word == "/help") {
                    std::fputs(kHelp, stdout);
                    if (editor) std::fputs(kKeysHelp, stdout);
                } else if (word == "/reset") {
                    chat.reset();
                    std::printf("(conversation cleared)\n");
                } else if (word == "/system") {
                    chat.set_system(rest);
                    chat.reset();
                    std::printf("(system prompt set; conversation cleared)\n");
                } else if (word == "/save") {
                    if (rest.empty()) fail("/save needs a file name");
                    // An answer stopped inside a character, or a model's stray byte tokens, can leave
                    // invalid UTF-8 in the history: saved as U+FFFD rather than refused.
                    const std::string text =
                        chat.messages().dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
                    write_file_atomically(rest, text.data(), text.size());
                    std::printf("(saved %zu messages to %s)\n", chat.messages().size(), rest.c_str());
                } else if (word == "/load") {
                    std::ifstream in(rest);
                    if (!in) fail("%s: cannot open", rest.c_str());
                    auto j = nlohmann::ordered_json::parse(in, nullptr, false);
                    if (j.is_discarded()) fail("%s: not valid JSON", rest.c_str());
                    chat.set_messages(j);
                    std::printf("(loaded %zu messages from %s)\n", chat.messages().size(), rest.c_str());
                } else if (word == "/stats") {
                    const SessionStats& st = session.stats();
                    std::printf("prompt: %lld tokens, %.1f t/s; generation: %lld tokens, %.1f t/s\n",
                                (long long)st.prompt_tokens, st.prompt_seconds > 0 ? st.prompt_tokens / st.prompt_seconds : 0.0,
                                (long long)st.decode_tokens, st.decode_seconds > 0 ? st.decode_tokens / st.decode_seconds : 0.0);
                } else {
                    std::printf("unknown command %s (/help lists them)\n", word.c_str());
                }
            } catch (const Error& e) {
                std::printf("error: %s\n", e.what());
            }
            continue;
        }
        session.reset_stats();
        g_interrupted.store(false);
        bool in_thought_shown = false;
        try {
            GenerateResult r = chat.reply(
                message, go,
                [&](const std::string& text, bool thinking) {
                    if (thinking && hide_think) return;
                    if (thinking != in_thought_shown) {
                        std::fputs(thinking ? dim : plain, stdout);
                        in_thought_shown = thinking;
                    }
                    std::fwrite(text.data(), 1, text.size(), stdout);
                    std::fflush(stdout);
                },
                &g_interrupted);
            std::fputs(plain, stdout);
            if (r.stop == StopReason::Cancelled) std::printf("\n(stopped)");
            if (r.stop == StopReason::ContextFull) std::printf("\n(context full: /reset to start over)");
            std::printf("\n");
        } catch (const Error& e) {
            std::fputs(plain, stdout);
            std::printf("\nerror: %s\n", e.what());
        }
        g_interrupted.store(false);
        if (args.count("show-speed")) {
            const SessionStats& st = session.stats();
            std::printf("[prompt %.1f t/s, generation %.1f t/s]\n",
                        st.prompt_seconds > 0 ? st.prompt_tokens / st.prompt_seconds : 0.0,
                        st.decode_seconds > 0 ? st.decode_tokens / st.decode_seconds : 0.0);
        }
    }
    if (tty) std::printf("\n");
    return 0;
}

CommandRegistration reg("chat", "chat with a model in the terminal", run_chat);

}  // namespace
}  // namespace moelite::app
