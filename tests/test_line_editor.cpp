// The chat's line editor (apps/line_editor.h): the key state machine fed byte
// sequences (keys, UTF-8, history, bracketed paste, Ctrl-C / Ctrl-D), the
// drawing checked on a small terminal emulator (wrapping, wide characters, the
// cursor inside a long line), and LineEditor on a real pty: edits across many
// redraws leave the right screen, typed-ahead lines are kept, the terminal's
// settings come back.
#include <doctest/doctest.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "apps/line_editor.h"
#include "models/unicode.h"

using namespace moelite;
using namespace moelite::app;

namespace {

const std::string kLeft = "\x1b[D", kRight = "\x1b[C", kUp = "\x1b[A", kDown = "\x1b[B";
const std::string kHome = "\x1b[H", kEnd = "\x1b[F", kDelete = "\x1b[3~";
const std::string kPasteStart = "\x1b[200~", kPasteEnd = "\x1b[201~";

std::string repeat(const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

struct Fed {
    std::string text;
    size_t cursor;
    EditAction action;
};

Fed type(const std::string& keys, const std::vector<std::string>& history = {}) {
    EditState s(history);
    const EditAction a = s.feed(keys);
    return {s.text(), s.cursor(), a};
}

// Just enough of a VT100/xterm to check what the editor draws: printable
// characters with their widths and xterm's deferred autowrap, CR, LF, cursor
// up / right, erase below, clear screen. The screen grows downwards without
// scrolling.
class Screen {
  public:
    explicit Screen(int columns) : cols_(columns) {}

    void put(const std::string& bytes) {
        for (size_t i = 0; i < bytes.size();) {
            const char c = bytes[i];
            if (c == '\r') {
                col_ = 0, wrap_ = false, ++i;
            } else if (c == '\n') {
                ++row_, wrap_ = false, ++i;
            } else if (c == '\x1b') {
                i = escape(bytes, i);
            } else {
                size_t n = 1;
                const uint32_t cp = unicode::utf8_decode(bytes.data() + i, bytes.size() - i, &n);
                print(bytes.substr(i, n), display_width(cp));
                i += n;
            }
        }
    }

    // The rows as text (trailing blank rows dropped), and the cursor.
    std::vector<std::string> rows() const {
        std::vector<std::string> out;
        for (const auto& r : cells_) {
            std::string line;
            for (const auto& cell : r) line += cell.empty() ? " " : cell == "\x01" ? "" : cell;
            while (!line.empty() && line.back() == ' ') line.pop_back();
            out.push_back(line);
        }
        while (!out.empty() && out.back().empty()) out.pop_back();
        return out;
    }
    int row() const { return row_; }
    int col() const { return col_; }

  private:
    void print(const std::string& glyph, int width) {
        if (width == 0) return;
        if (wrap_ || col_ + width > cols_) ++row_, col_ = 0;
        wrap_ = false;
        cell(row_, col_) = glyph;
        if (width == 2) cell(row_, col_ + 1) = "\x01";  // the right half of a wide character
        col_ += width;
        if (col_ >= cols_) col_ = cols_ - 1, wrap_ = true;
    }

    size_t escape(const std::string& b, size_t i) {
        REQUIRE(i + 1 < b.size());
        REQUIRE(b[i + 1] == '[');
        size_t j = i + 2;
        std::string params;
        while (j < b.size() && ((b[j] >= '0' && b[j] <= '9') || b[j] == ';' || b[j] == '?')) params += b[j++];
        REQUIRE(j < b.size());
        const char final = b[j];
        const int n = params.empty() || params[0] == '?' ? 1 : std::stoi(params);
        wrap_ = false;
        if (final == 'A') {
            row_ = std::max(0, row_ - n);
        } else if (final == 'C') {
            col_ = std::min(cols_ - 1, col_ + n);
        } else if (final == 'J' && params.empty()) {
            if (row_ < int(cells_.size())) {
                cells_[row_].resize(size_t(std::min<int>(col_, int(cells_[row_].size()))));
                cells_.resize(size_t(row_ + 1));
            }
        } else if (final == 'J' && params == "2") {
            cells_.clear();
        } else if (final == 'H') {
            row_ = col_ = 0;
        } else if (final != 'h' && final != 'l') {  // ?2004h / ?2004l: bracketed paste on / off
            FAIL("unexpected escape sequence ESC[" << params << final);
        }
        return j + 1;
    }

    std::string& cell(int r, int c) {
        if (int(cells_.size()) <= r) cells_.resize(size_t(r + 1));
        if (int(cells_[r].size()) <= c) cells_[r].resize(size_t(c + 1));
        return cells_[r][c];
    }

    int cols_;
    int row_ = 0, col_ = 0;
    bool wrap_ = false;
    std::vector<std::vector<std::string>> cells_;
};

}  // namespace

TEST_CASE("line editor: typing, character moves, Home and End") {
    Fed f = type("hllo" + repeat(kLeft, 3) + "e");
    CHECK(f.text == "hello");
    CHECK(f.cursor == 2);
    CHECK(f.action == EditAction::None);
    CHECK(type("abc" + kHome + "x").text == "xabc");
    CHECK(type("abc\x01x").text == "xabc");                  // Ctrl-A
    CHECK(type("abc\x01\x05x").text == "abcx");              // Ctrl-E
    CHECK(type("abc" + kHome + kEnd + "x").text == "abcx");  // Home, End
    CHECK(type("abc\x1bOH"
               "x")
              .text == "xabc");                                                           // Home in application mode
    CHECK(type("abc\x1b[1~x\x1b[4~y").text == "xabcy");                                   // Home, End as VT keys
    CHECK(type("abc\x02\x02\x06x").text == "abxc");                                       // Ctrl-B, Ctrl-F
    CHECK(type("ab" + repeat(kLeft, 5) + "x" + repeat(kRight, 9) + "y").text == "xaby");  // moves stop at the ends
    CHECK(type("a\x1b[15~\x1b[1;2Pb").text == "ab");                                      // keys we do not use: nothing
}

TEST_CASE("line editor: UTF-8 input, the cursor moves by code point") {
    const std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
    Fed f = type(text);
    CHECK(f.text == text);
    CHECK(f.cursor == text.size());
    f = type(text + kLeft);
    CHECK(f.cursor == 6);  // before the 4-byte emoji
    f = type(text + repeat(kLeft, 2) + "\x7f");
    CHECK(f.text == "a\xE4\xB8\xAD\xF0\x9F\x98\x80");  // Backspace took é, both bytes
    f = type(text + kHome + kRight + kRight + "|");
    CHECK(f.text == "a\xC3\xA9|\xE4\xB8\xAD\xF0\x9F\x98\x80");
    // A combining mark goes with its base: e + U+0301.
    f = type("xe\xCC\x81" + kLeft + "|");
    CHECK(f.text == "x|e\xCC\x81");
    // Bytes that are not UTF-8 become U+FFFD; the text stays valid.
    f = type(
        "a\xFF"
        "b\xE4\xB8"
        "c\xED\xA0\x80");  // a stray byte, a truncated sequence, a surrogate
    CHECK(f.text ==
          "a\xEF\xBF\xBD"
          "b\xEF\xBF\xBD"
          "c\xEF\xBF\xBD");
    CHECK(unicode::utf8_is_valid(f.text));
    // Control keys in the middle of a sequence do not break the text.
    const std::vector<std::string> none;
    EditState s(none);
    s.feed(std::string("\xE4\xB8"));
    CHECK(s.text().empty());
    s.feed(std::string("\xAD"));
    CHECK(s.text() == "\xE4\xB8\xAD");
    CHECK(display_width(U'中') == 2);
    CHECK(display_width(0x1F600) == 2);
    CHECK(display_width(0x301) == 0);
    CHECK(display_width(U'a') == 1);
    CHECK(display_width(U'é') == 1);
}

TEST_CASE("line editor: deleting characters, words and lines; Ctrl-Y puts back") {
    CHECK(type("abc\x7f").text == "ab");                // Backspace
    CHECK(type("abc\x08").text == "ab");                // Ctrl-H
    CHECK(type("abc" + kHome + kDelete).text == "bc");  // Delete
    CHECK(type("abc" + kHome + "\x04").text == "bc");   // Ctrl-D on a non-empty line deletes
    CHECK(type("abc\x04").action == EditAction::None);  // ... and at its end does nothing
    CHECK(type("abc\x04").text == "abc");
    CHECK(type("hello world" + repeat(kLeft, 5) + "\x0b").text == "hello ");  // Ctrl-K
    Fed f = type("hello world" + repeat(kLeft, 5) + "\x15");                  // Ctrl-U
    CHECK(f.text == "world");
    CHECK(f.cursor == 0);
    CHECK(type("git commit -m  \x17").text == "git commit ");  // Ctrl-W: to whitespace
    CHECK(type("path/to/file\x17").text == "");
    CHECK(type("path/to/file\x1b\x7f").text == "path/to/");  // Alt-Backspace: a word
    CHECK(type("one two three" + kHome +
               "\x1b"
               "d")
              .text == " two three");                               // Alt-D
    CHECK(type("one two\x17" + kHome + "\x19").text == "twoone ");  // Ctrl-Y
    CHECK(type("\x7f" + kDelete + "\x17\x15\x0b").text == "");      // on an empty line: nothing
}

TEST_CASE("line editor: word moves with Alt-B / Alt-F and Ctrl-arrows") {
    const std::string text = "one two, three";
    CHECK(type(text + "\x1b"
                      "b|")
              .text == "one two, |three");
    CHECK(type(text + "\x1b"
                      "b\x1b"
                      "b|")
              .text == "one |two, three");
    CHECK(type(text + "\x1b[1;5D\x1b[1;5D|").text == "one |two, three");  // Ctrl-Left (xterm)
    CHECK(type(text + kHome +
               "\x1b"
               "f|")
              .text == "one| two, three");
    CHECK(type(text + kHome + "\x1b[1;5C\x1b[1;5C|").text == "one two|, three");  // Ctrl-Right
    CHECK(type(text + kHome + "\x1b[1;3C|").text == "one| two, three");           // Alt-Right
    CHECK(type(text + "\x1b\x1b[D|").text == "one two, thre|e");                  // ESC ESC [ D: one step
}

TEST_CASE("line editor: Enter, Ctrl-C, Ctrl-D, Ctrl-L, Ctrl-Z are actions") {
    CHECK(type("hi\r").action == EditAction::Submit);
    CHECK(type("hi\n").action == EditAction::Submit);  // LF too: scripts that drive a terminal send it
    CHECK(type("hi\r").text == "hi");
    CHECK(type("hi\x03").action == EditAction::Interrupt);
    CHECK(type("hi\x03").text == "hi");
    CHECK(type("\x04").action == EditAction::EndOfInput);
    CHECK(type("\x0c").action == EditAction::ClearScreen);
    CHECK(type("\x1a").action == EditAction::Suspend);
    // Alt-Enter puts a line break in the text.
    Fed f = type("one\x1b\rtwo");
    CHECK(f.text == "one\ntwo");
    CHECK(f.action == EditAction::None);
    // Other control keys do nothing.
    CHECK(type("a\x07\x0f\x11\x13\x16\x1c\x1d\x1e\x1f"
               "b")
              .text == "ab");
}

TEST_CASE("line editor: Up/Down browse the history, the line being edited is kept") {
    const std::vector<std::string> history = {"first", "second"};
    CHECK(type(kUp, history).text == "second");
    CHECK(type(kUp + kUp, history).text == "first");
    CHECK(type(kUp + kUp + kUp, history).text == "first");  // stops at the oldest
    Fed f = type("draft" + kUp + kUp + kDown + kDown, history);
    CHECK(f.text == "draft");
    CHECK(f.cursor == 5);
    CHECK(type("draft" + kDown, history).text == "draft");  // nothing newer
    CHECK(type("\x10", history).text == "second");          // Ctrl-P
    CHECK(type("\x10\x10\x0e", history).text == "second");  // Ctrl-N
    // Edits to a recalled entry are kept while browsing; the history itself is not changed.
    EditState s(history);
    s.feed(kUp + "!" + kUp + kDown);
    CHECK(s.text() == "second!");
    CHECK(history[1] == "second");
    CHECK(s.feed(std::string("\r")) == EditAction::Submit);
    CHECK(type(kUp, {}).text.empty());  // no history: nothing happens
}

TEST_CASE("line editor: Up/Down move between the lines of a multi-line text first") {
    const std::vector<std::string> history = {"old"};
    EditState s(history);
    s.set_text("first line\nsecond\nthird line", 28);  // at the end of "third line"
    s.feed(kUp);
    CHECK(s.cursor() == 17);  // "second" is shorter: its end
    s.feed(kUp);
    CHECK(s.cursor() == 6);  // column 6 of "first line"
    s.feed(kDown + kDown);
    CHECK(s.cursor() == 24);  // column 6 of "third line"
    s.feed("\x01");
    CHECK(s.cursor() == 18);  // Ctrl-A: start of this line
    s.feed("\x05");
    CHECK(s.cursor() == 28);
    s.set_text("a\nb", 0);
    s.feed(kUp);
    CHECK(s.text() == "old");  // on the first line: history
}

TEST_CASE("line editor: a bracketed paste arrives as one text, newlines and all") {
    const std::vector<std::string> none;
    EditState s(none);
    s.feed(kPasteStart + "line one\r\nline two\rthree\n");
    CHECK(s.in_paste());
    s.feed("\ttabbed\x03\x04\x7f\x1b[A" + kPasteEnd);  // control keys and escape sequences in a paste do nothing
    CHECK(!s.in_paste());
    CHECK(s.text() == "line one\nline two\nthree\n\ttabbed");
    CHECK(s.feed(std::string("\r")) == EditAction::Submit);
    // The paste goes where the cursor is; typing goes on after it.
    Fed f = type("[]" + kLeft + kPasteStart + "a\rb" + kPasteEnd + "c");
    CHECK(f.text == "[a\nbc]");
    // A paste end split across reads.
    EditState t(none);
    t.feed(kPasteStart + "x\x1b[20");
    CHECK(t.in_paste());
    t.feed(std::string("1~y"));
    CHECK(t.text() == "xy");
}

TEST_CASE("line editor: drawing wraps at the terminal width and puts the cursor in its cell") {
    auto screen_of = [](const Rendering& r, int cols) {
        Screen sc(cols);
        sc.put(r.bytes);
        CHECK(sc.row() == r.cursor_row);
        CHECK(sc.col() == r.cursor_col);
        return sc.rows();
    };
    Rendering r = render_edit("> ", "... ", "hello", 5, 80);
    CHECK(screen_of(r, 80) == std::vector<std::string>{"> hello"});
    CHECK(r.cursor_col == 7);
    CHECK(r.rows == 1);

    // 20 characters after a 2-column prompt on a 10-column terminal: three rows.
    const std::string text = "abcdefghijklmnopqrst";
    r = render_edit("> ", "... ", text, text.size(), 10);
    CHECK(screen_of(r, 10) == std::vector<std::string>{"> abcdefgh", "ijklmnopqr", "st"});
    CHECK(r.cursor_row == 2);
    CHECK(r.cursor_col == 2);
    r = render_edit("> ", "... ", text, 9, 10);  // on the 'j': second row
    screen_of(r, 10);
    CHECK(r.cursor_row == 1);
    CHECK(r.cursor_col == 1);
    r = render_edit("> ", "... ", text, 8, 10);  // on the 'i': first cell of the second row
    CHECK(r.cursor_row == 1);
    CHECK(r.cursor_col == 0);

    // A row filled to its last column, the cursor after it: the cursor gets the next row.
    r = render_edit("> ", "... ", "abcdefgh", 8, 10);
    CHECK(screen_of(r, 10) == std::vector<std::string>{"> abcdefgh"});
    CHECK(r.cursor_row == 1);
    CHECK(r.cursor_col == 0);
    CHECK(r.rows == 2);

    // Wide characters take two cells and are not split across rows.
    const std::string cjk = repeat("\xE4\xB8\xAD", 5);  // 中 x 5
    r = render_edit("> ", "... ", cjk, cjk.size(), 9);
    CHECK(screen_of(r, 9) == std::vector<std::string>{"> " + repeat("\xE4\xB8\xAD", 3), repeat("\xE4\xB8\xAD", 2)});
    CHECK(r.cursor_row == 1);
    CHECK(r.cursor_col == 4);

    // A multi-line text: continued lines are drawn after the continuation prompt.
    r = render_edit("> ", "... ", "one\ntwo", 5, 80);
    CHECK(screen_of(r, 80) == std::vector<std::string>{"> one", "... two"});
    CHECK(r.cursor_row == 1);
    CHECK(r.cursor_col == 5);
    // A tab is drawn as spaces.
    r = render_edit("> ", "... ", "a\tb", 3, 80);
    CHECK(screen_of(r, 80) == std::vector<std::string>{"> a    b"});
    CHECK(r.cursor_col == 8);
}

namespace {

// A LineEditor on one end of a pty; keys are typed on the other end, one chunk
// at a time (each one read and drawn on its own), once the editor is in raw mode.
struct PtyEditor {
    int master = -1, slave = -1;
    int cols;
    termios before{};

    explicit PtyEditor(int columns) : cols(columns) {
        winsize ws = {};
        ws.ws_row = 24;
        ws.ws_col = static_cast<unsigned short>(columns);
        REQUIRE(openpty(&master, &slave, nullptr, nullptr, &ws) == 0);
        REQUIRE(tcgetattr(slave, &before) == 0);
    }
    ~PtyEditor() {
        close(master);
        close(slave);
    }

    bool raw() const {
        termios t{};
        return tcgetattr(slave, &t) == 0 && !(t.c_lflag & ICANON);
    }

    // Runs read_line while another thread types `keys`; returns the result and what was drawn.
    ReadResult read(LineEditor& editor, const std::vector<std::string>& keys, std::string* drawn) {
        std::thread typist([&] {
            for (const auto& k : keys) {
                for (int i = 0; i < 2000 && !raw(); ++i) usleep(1000);
                if (write(master, k.data(), k.size()) != ssize_t(k.size())) return;
                usleep(3000);
            }
        });
        ReadResult r = editor.read_line("> ");
        typist.join();
        for (;;) {
            pollfd p{master, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) break;
            char buf[4096];
            const ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) break;
            drawn->append(buf, size_t(n));
        }
        return r;
    }
};

bool same_settings(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag && a.c_lflag == b.c_lflag &&
           std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

}  // namespace

TEST_CASE("line editor: on a pty, edits inside a wrapped line redraw to the right screen") {
    PtyEditor pty(20);
    LineEditor editor(pty.slave, pty.slave);
    std::vector<std::string> keys;
    for (char c : std::string("The quick brown fox jumps over the lazy dog")) keys.push_back(std::string(1, c));
    keys.push_back("\x01");  // to the start: two rows up
    keys.push_back(
        "\x1b"
        "f");  // after "The"
    keys.push_back(
        "\x1b"
        "f");  // after "quick"
    keys.push_back(",");
    keys.push_back(repeat(kRight, 18));  // after the "o" of "over", on the second row
    keys.push_back("\x7f");
    keys.push_back("\r");
    std::string drawn;
    const ReadResult r = pty.read(editor, keys, &drawn);
    CHECK(r.status == ReadStatus::Line);
    CHECK(r.text == "The quick, brown fox jumps ver the lazy dog");
    Screen screen(20);
    screen.put(drawn);
    INFO("drawn: " << drawn);
    CHECK(screen.rows() == std::vector<std::string>{"> The quick, brown f", "ox jumps ver the laz", "y dog"});
    CHECK(screen.row() == 3);  // on a fresh row after Enter
    CHECK(screen.col() == 0);
    termios after{};
    REQUIRE(tcgetattr(pty.slave, &after) == 0);
    CHECK(same_settings(pty.before, after));
    const size_t paste_on = drawn.rfind("\x1b[?2004h"), paste_off = drawn.rfind("\x1b[?2004l");
    CHECK(paste_on != std::string::npos);
    CHECK(paste_off != std::string::npos);
    CHECK(paste_off > paste_on);  // bracketed paste off again
}

TEST_CASE("line editor: on a pty, wide characters in a wrapped line") {
    PtyEditor pty(9);
    LineEditor editor(pty.slave, pty.slave);
    const std::string zhong = "\xE4\xB8\xAD", wen = "\xE6\x96\x87";
    std::vector<std::string> keys(6, zhong);
    keys.push_back(repeat(kLeft, 4));
    keys.push_back(wen);
    keys.push_back("\r");
    std::string drawn;
    const ReadResult r = pty.read(editor, keys, &drawn);
    CHECK(r.text == repeat(zhong, 2) + wen + repeat(zhong, 4));
    Screen screen(9);
    screen.put(drawn);
    CHECK(screen.rows() == std::vector<std::string>{"> " + repeat(zhong, 2) + wen, repeat(zhong, 4)});
}

TEST_CASE("line editor: on a pty, history, Ctrl-C, Ctrl-D and lines typed ahead") {
    PtyEditor pty(80);
    LineEditor editor(pty.slave, pty.slave);
    std::string drawn;
    // Two lines in one write: the second waits for the next read_line.
    ReadResult r = pty.read(editor, {"one\rtwo\r"}, &drawn);
    CHECK(r.text == "one");
    editor.add_history(r.text);
    r = pty.read(editor, {}, &drawn);
    CHECK(r.text == "two");
    editor.add_history(r.text);
    editor.add_history("two");  // the same as the last: not added again
    CHECK(editor.history() == std::vector<std::string>{"one", "two"});
    r = pty.read(editor, {kUp, kUp, "!", "\r"}, &drawn);
    CHECK(r.text == "one!");
    drawn.clear();
    r = pty.read(editor, {"abandoned", "\x03"}, &drawn);
    CHECK(r.status == ReadStatus::Interrupted);
    CHECK(r.text == "abandoned");
    Screen screen(80);
    screen.put(drawn);
    CHECK(screen.rows() == std::vector<std::string>{"> abandoned^C"});
    CHECK(screen.row() == 1);
    r = pty.read(editor, {"\x04"}, &drawn);
    CHECK(r.status == ReadStatus::EndOfInput);
    termios after{};
    REQUIRE(tcgetattr(pty.slave, &after) == 0);
    CHECK(same_settings(pty.before, after));
}

TEST_CASE("line editor: on a pty, a pasted block is one line; Ctrl-L clears the screen") {
    PtyEditor pty(40);
    LineEditor editor(pty.slave, pty.slave);
    std::string drawn;
    ReadResult r = pty.read(editor, {kPasteStart + "def f():\r    return 1\r" + kPasteEnd, "\x0c", "\r"}, &drawn);
    CHECK(r.text == "def f():\n    return 1\n");
    Screen screen(40);
    screen.put(drawn);
    CHECK(screen.rows() == std::vector<std::string>{"> def f():", "...     return 1", "..."});
    CHECK(drawn.find("\x1b[2J") != std::string::npos);
}
