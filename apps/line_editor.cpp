// Line editing for `moelite chat`: the key handling (EditState), the drawing
// (render_edit) and the terminal (LineEditor). See apps/line_editor.h.
//
// Keys (bash / readline habits): Left/Right and Ctrl-B/Ctrl-F by character,
// Alt-B/Alt-F and Ctrl-Left/Ctrl-Right by word, Home/End and Ctrl-A/Ctrl-E,
// Backspace, Delete, Ctrl-D (delete, or end of input on an empty line), Ctrl-K
// / Ctrl-U (kill to end / start of line), Ctrl-W (kill the previous
// whitespace-delimited word), Alt-D / Alt-Backspace (kill a word forward /
// back), Ctrl-Y (put back the last kill), Up/Down and Ctrl-P/Ctrl-N (lines of a
// multi-line text, then history), Ctrl-L, Ctrl-C, Ctrl-Z, Enter (CR or LF),
// Alt-Enter (a newline in the text). Bracketed paste (ESC[200~ ... ESC[201~)
// inserts text verbatim, newlines included, so a pasted block is one message.
#include "apps/line_editor.h"

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iterator>

#include "core/error.h"
#include "models/unicode.h"

namespace moelite::app {

// ---------------------------------------------------------------- widths ---

namespace {

struct Range {
    uint32_t first, last;
};

bool in_ranges(uint32_t cp, const Range* ranges, size_t n) {
    const Range* end = ranges + n;
    const Range* r = std::lower_bound(ranges, end, cp, [](const Range& a, uint32_t v) { return a.last < v; });
    return r != end && r->first <= cp;
}

// East Asian Wide / Fullwidth blocks and emoji shown as two columns (sorted).
constexpr Range kWide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},   {0x23F0, 0x23F0},
    {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},   {0x2648, 0x2653},   {0x267F, 0x267F},
    {0x2693, 0x2693},   {0x26A1, 0x26A1},   {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},
    {0x26CE, 0x26CE},   {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},   {0x2728, 0x2728},
    {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},   {0x2757, 0x2757},   {0x2795, 0x2797},
    {0x27B0, 0x27B0},   {0x27BF, 0x27BF},   {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},
    {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
    {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},
    {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x16FE0, 0x18AFF}, {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004},
    {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F2FF}, {0x1F300, 0x1F64F},
    {0x1F680, 0x1F6FF}, {0x1F7E0, 0x1F7EB}, {0x1F900, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD},
    {0x30000, 0x3FFFD},
};

// Zero-width format characters and variation selectors (combining marks are
// found by their general category).
constexpr Range kZero[] = {
    {0x1160, 0x11FF}, {0x200B, 0x200F}, {0x2060, 0x2064}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF}, {0xE0000, 0xE0FFF},
};

bool is_zero_width(uint32_t cp) {
    if (cp < 0x300) return false;
    if (in_ranges(cp, kZero, std::size(kZero))) return true;
    if (!(unicode::flags(cp) & unicode::kMark)) return false;
    const auto cat = unicode::general_category(cp);
    return cat == unicode::GeneralCategory::Mn || cat == unicode::GeneralCategory::Me;
}

uint32_t decode_at(std::string_view s, size_t pos, size_t* length) {
    return unicode::utf8_decode(s.data() + pos, s.size() - pos, length);
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n';
}

// Letters, digits, '_' and anything not ASCII (checked on a code point's first byte).
bool is_word_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || std::isalnum(u) || c == '_';
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr int kTabWidth = 4;

}  // namespace

int display_width(uint32_t cp) {
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return 0;
    if (cp < 0x300) return 1;
    if (is_zero_width(cp)) return 0;
    return in_ranges(cp, kWide, std::size(kWide)) ? 2 : 1;
}

// ------------------------------------------------------------ EditState ---

void EditState::set_text(std::string text, size_t cursor) {
    MOELITE_ASSERT(cursor <= text.size());
    text_ = std::move(text);
    cursor_ = cursor;
}

EditAction EditState::feed(std::string_view bytes) {
    EditAction last = EditAction::None;
    for (char c : bytes) {
        const EditAction a = feed(static_cast<unsigned char>(c));
        if (a != EditAction::None) last = a;
    }
    return last;
}

EditAction EditState::feed(unsigned char byte) {
    switch (input_) {
        case Input::Escape:
            if (byte == '[') {
                input_ = Input::Csi;
                params_.clear();
                return EditAction::None;
            }
            if (byte == 'O' && !paste_) {
                input_ = Input::Ss3;
                return EditAction::None;
            }
            if (byte == 0x1b) return EditAction::None;  // ESC ESC [ ...: Alt-arrow in some terminals
            input_ = Input::Normal;
            if (paste_) return feed(byte);  // a stray ESC in pasted text is dropped
            switch (byte) {
                case 'b':
                case 'B':
                    cursor_ = word_left(cursor_, true);
                    return EditAction::None;
                case 'f':
                case 'F':
                    cursor_ = word_right(cursor_);
                    return EditAction::None;
                case 'd':
                case 'D':
                    erase(cursor_, word_right(cursor_), true);
                    return EditAction::None;
                case 0x7f:
                case 0x08:
                    erase(word_left(cursor_, true), cursor_, true);
                    return EditAction::None;
                case '\r':
                case '\n':
                    insert("\n");  // Alt-Enter
                    return EditAction::None;
                default:
                    return feed(byte);  // ESC then a key: the key
            }
        case Input::Csi:
            if (byte >= 0x20 && byte <= 0x3f) {
                if (params_.size() < 16) params_ += char(byte);
                return EditAction::None;
            }
            input_ = Input::Normal;
            if (byte >= 0x40 && byte <= 0x7e) return escape_sequence(params_, byte);
            return feed(byte);  // a broken sequence: the byte counts on its own
        case Input::Ss3:
            input_ = Input::Normal;
            return escape_sequence("", byte);
        case Input::Normal:
            break;
    }
    if (utf8_need_ > 0) {
        if ((byte & 0xC0) == 0x80) {
            insert_byte(byte);
            return EditAction::None;
        }
        insert(kReplacement);  // a truncated sequence
        utf8_.clear();
        utf8_need_ = 0;
    }
    if (byte == 0x1b) {
        input_ = Input::Escape;
        return EditAction::None;
    }
    if (!paste_) return key(byte);
    const bool after_cr = paste_cr_;
    paste_cr_ = byte == '\r';
    if (byte == '\r' || (byte == '\n' && !after_cr)) {
        insert("\n");
    } else if (byte == '\t') {
        insert("\t");
    } else if (byte >= 0x20 && byte != 0x7f) {
        insert_byte(byte);
    }
    return EditAction::None;
}

EditAction EditState::key(unsigned char byte) {
    const size_t line_start = start_of_line(cursor_);
    const size_t line_end = std::min(text_.find('\n', cursor_), text_.size());
    switch (byte) {
        case '\r':
        case '\n':
            return EditAction::Submit;
        case 0x03:  // Ctrl-C
            return EditAction::Interrupt;
        case 0x04:  // Ctrl-D
            if (text_.empty()) return EditAction::EndOfInput;
            erase(cursor_, next(cursor_), false);
            break;
        case 0x0c:  // Ctrl-L
            return EditAction::ClearScreen;
        case 0x1a:  // Ctrl-Z
            return EditAction::Suspend;
        case 0x01:  // Ctrl-A
            cursor_ = line_start;
            break;
        case 0x05:  // Ctrl-E
            cursor_ = line_end;
            break;
        case 0x02:  // Ctrl-B
            cursor_ = prev(cursor_);
            break;
        case 0x06:  // Ctrl-F
            cursor_ = next(cursor_);
            break;
        case 0x7f:  // Backspace
        case 0x08:  // Ctrl-H
            erase(prev(cursor_), cursor_, false);
            break;
        case 0x0b:  // Ctrl-K: to the end of the line; at its end, the line break
            erase(cursor_, line_end > cursor_ ? line_end : next(cursor_), true);
            break;
        case 0x15:  // Ctrl-U: to the start of the line; at its start, the line break
            erase(line_start < cursor_ ? line_start : prev(cursor_), cursor_, true);
            break;
        case 0x17:  // Ctrl-W
            erase(word_left(cursor_, false), cursor_, true);
            break;
        case 0x19:  // Ctrl-Y
            insert(killed_);
            break;
        case 0x10:  // Ctrl-P
            vertical(-1);
            break;
        case 0x0e:  // Ctrl-N
            vertical(1);
            break;
        case '\t':
            insert("\t");
            break;
        default:
            if (byte >= 0x20 && byte != 0x7f) insert_byte(byte);  // other control keys do nothing
            break;
    }
    return EditAction::None;
}

EditAction EditState::escape_sequence(const std::string& params, unsigned char final) {
    if (paste_) {  // only the end of the paste means something inside it
        if (final == '~' && params == "201") paste_ = false;
        return EditAction::None;
    }
    if (final == '~') {
        if (params == "200") {
            paste_ = true;
            paste_cr_ = false;
        } else if (params == "1" || params == "7") {
            return key(0x01);
        } else if (params == "4" || params == "8") {
            return key(0x05);
        } else if (params == "3") {
            erase(cursor_, next(cursor_), false);
        }
        return EditAction::None;
    }
    // Ctrl (5) or Alt (3) with an arrow: by word. xterm sends ESC[1;5C, rxvt ESC[5C.
    const bool by_word = params == "1;5" || params == "1;3" || params == "5" || params == "3";
    switch (final) {
        case 'A':
            vertical(-1);
            break;
        case 'B':
            vertical(1);
            break;
        case 'C':
            cursor_ = by_word ? word_right(cursor_) : next(cursor_);
            break;
        case 'D':
            cursor_ = by_word ? word_left(cursor_, true) : prev(cursor_);
            break;
        case 'H':
            return key(0x01);
        case 'F':
            return key(0x05);
        default:
            break;  // keys we do not use (F1..F12, ...)
    }
    return EditAction::None;
}

void EditState::insert(std::string_view utf8) {
    // Not std::string::insert: GCC 12 gives a false -Wrestrict warning for it here.
    std::string tail = text_.substr(cursor_);
    text_.resize(cursor_);
    text_.append(utf8.data(), utf8.size());
    text_ += tail;
    cursor_ += utf8.size();
}

void EditState::insert_byte(unsigned char byte) {
    if (utf8_need_ == 0) {
        if (byte < 0x80) {
            const char c = char(byte);
            insert(std::string_view(&c, 1));
            return;
        }
        utf8_need_ = byte >= 0xF0 && byte <= 0xF4   ? 3
                     : byte >= 0xE0 && byte <= 0xEF ? 2
                     : byte >= 0xC2 && byte <= 0xDF ? 1
                                                    : 0;
        if (utf8_need_ == 0) {  // a byte that cannot start a sequence
            insert(kReplacement);
            return;
        }
        utf8_.assign(1, char(byte));
        return;
    }
    utf8_ += char(byte);
    if (--utf8_need_ > 0) return;
    // Overlong forms, surrogates and code points past U+10FFFF are replaced.
    size_t length = 0;
    const uint32_t cp = unicode::utf8_decode(utf8_.data(), utf8_.size(), &length);
    insert(cp >= unicode::kInvalidBase || length != utf8_.size() ? kReplacement : std::string_view(utf8_));
    utf8_.clear();
}

void EditState::erase(size_t from, size_t to, bool keep_killed) {
    if (from >= to) return;
    if (keep_killed) killed_ = text_.substr(from, to - from);
    text_.erase(from, to - from);
    cursor_ = from;
}

size_t EditState::next(size_t pos) const {
    if (pos >= text_.size()) return text_.size();
    size_t length = 1;
    decode_at(text_, pos, &length);
    pos += length;
    while (pos < text_.size()) {  // marks and joiners go with the character before them
        const uint32_t cp = decode_at(text_, pos, &length);
        if (display_width(cp) != 0 || cp < 0x20) break;
        pos += length;
    }
    return pos;
}

size_t EditState::prev(size_t pos) const {
    while (pos > 0) {
        --pos;
        while (pos > 0 && (static_cast<unsigned char>(text_[pos]) & 0xC0) == 0x80) --pos;
        size_t length = 1;
        const uint32_t cp = decode_at(text_, pos, &length);
        if (display_width(cp) != 0 || cp < 0x20) break;
    }
    return pos;
}

size_t EditState::start_of_line(size_t pos) const {
    const size_t nl = pos == 0 ? std::string::npos : text_.rfind('\n', pos - 1);
    return nl == std::string::npos ? 0 : nl + 1;
}

size_t EditState::word_left(size_t pos, bool alnum_words) const {
    auto in_word = [&](size_t p) { return alnum_words ? is_word_char(text_[p]) : !is_space(text_[p]); };
    while (pos > 0 && !in_word(prev(pos))) pos = prev(pos);
    while (pos > 0 && in_word(prev(pos))) pos = prev(pos);
    return pos;
}

size_t EditState::word_right(size_t pos) const {
    while (pos < text_.size() && !is_word_char(text_[pos])) pos = next(pos);
    while (pos < text_.size() && is_word_char(text_[pos])) pos = next(pos);
    return pos;
}

void EditState::vertical(int direction) {
    // Within a multi-line text, move to the same column (in characters) of the line above or below.
    const size_t line_start = start_of_line(cursor_);
    size_t target_start;
    if (direction < 0) {
        if (line_start == 0) return browse_history(-1);
        target_start = start_of_line(line_start - 1);
    } else {
        const size_t nl = text_.find('\n', cursor_);
        if (nl == std::string::npos) return browse_history(1);
        target_start = nl + 1;
    }
    size_t column = 0;
    for (size_t p = line_start; p < cursor_; p = next(p)) ++column;
    cursor_ = target_start;
    for (; column > 0 && cursor_ < text_.size() && text_[cursor_] != '\n'; --column) cursor_ = next(cursor_);
}

void EditState::browse_history(int direction) {
    if (scratch_.empty()) {
        scratch_ = history_;
        scratch_.push_back(text_);
    }
    const size_t target = history_index_ + direction;
    if (direction < 0 ? history_index_ == 0 : target >= scratch_.size()) return;
    scratch_[history_index_] = text_;  // edits to a recalled line are kept while browsing
    history_index_ = target;
    text_ = scratch_[target];
    cursor_ = text_.size();
}

// ------------------------------------------------------------ rendering ---

Rendering render_edit(std::string_view prompt, std::string_view continuation_prompt, std::string_view text,
                      size_t cursor, int columns) {
    MOELITE_ASSERT(cursor <= text.size());
    const int cols = std::max(columns, kTabWidth);
    Rendering r;
    int row = 0, col = 0;
    auto new_row = [&] {
        r.bytes += "\r\n";  // explicit, so that a row filled to the last column needs no autowrap
        ++row;
        col = 0;
    };
    // Draws s; for the edited text, records where the cursor goes.
    auto draw = [&](std::string_view s, bool is_text) {
        for (size_t pos = 0;;) {
            const bool at_cursor = is_text && pos == cursor;
            if (at_cursor && col == cols) new_row();  // a full row: the cursor needs a cell on the next
            if (pos >= s.size()) {
                if (at_cursor) r.cursor_row = row, r.cursor_col = col;
                return;
            }
            size_t length = 1;
            const uint32_t cp = decode_at(s, pos, &length);
            const int width = cp == '\t' ? kTabWidth : display_width(cp);
            const bool wraps = col + width > cols;
            if (at_cursor) {
                r.cursor_row = wraps ? row + 1 : row;
                r.cursor_col = wraps ? 0 : col;
            }
            if (cp == '\n') {
                new_row();
                for (size_t p = 0; p < continuation_prompt.size();) {  // the prompt of a continued line
                    size_t n = 1;
                    const int w = display_width(decode_at(continuation_prompt, p, &n));
                    if (col + w > cols) new_row();
                    r.bytes.append(continuation_prompt.substr(p, n));
                    col += w;
                    p += n;
                }
            } else {
                if (wraps) new_row();
                if (cp == '\t') {
                    r.bytes.append(size_t(kTabWidth), ' ');
                } else if (cp >= 0x20) {
                    r.bytes.append(s.substr(pos, length));
                }
                col += width;
            }
            pos += length;
        }
    };
    draw(prompt, false);
    draw(text, true);
    r.rows = row + 1;
    if (row == r.cursor_row && col == r.cursor_col) return r;  // already there
    if (row > r.cursor_row) r.bytes += strprintf("\x1b[%dA", row - r.cursor_row);
    r.bytes += "\r";
    if (r.cursor_col > 0) r.bytes += strprintf("\x1b[%dC", r.cursor_col);
    return r;
}

// ------------------------------------------------------------- terminal ---

namespace {

// What a signal handler needs to put the terminal back: set only while a line
// is being read. (Process-wide because signals are.)
termios g_saved_termios;
volatile sig_atomic_t g_raw_in_fd = -1;
volatile sig_atomic_t g_raw_out_fd = -1;
volatile sig_atomic_t g_resized = 0;

constexpr char kPasteOn[] = "\x1b[?2004h";
constexpr char kPasteOff[] = "\x1b[?2004l";

void restore_and_reraise(int sig) {
    if (g_raw_in_fd >= 0) {
        if (g_raw_out_fd >= 0) (void)!write(g_raw_out_fd, kPasteOff, sizeof kPasteOff - 1);
        tcsetattr(g_raw_in_fd, TCSANOW, &g_saved_termios);
    }
    signal(sig, SIG_DFL);
    raise(sig);  // delivered when this handler returns
}

void on_resize(int) {
    g_resized = 1;
}

constexpr int kFatalSignals[] = {SIGTERM, SIGHUP, SIGQUIT};

// Raw mode on a terminal for the lifetime of the object (or until leave()).
class RawMode {
  public:
    RawMode(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {
        if (tcgetattr(in_fd_, &saved_) != 0) fail("cannot read the terminal's settings: %s", std::strerror(errno));
        enter();
    }
    ~RawMode() { leave(); }
    RawMode(const RawMode&) = delete;
    RawMode& operator=(const RawMode&) = delete;

    void enter() {
        if (active_) return;
        g_saved_termios = saved_;
        g_raw_out_fd = out_fd_;
        g_raw_in_fd = in_fd_;
        struct sigaction sa = {};
        sa.sa_handler = restore_and_reraise;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < std::size(kFatalSignals); ++i) sigaction(kFatalSignals[i], &sa, &old_actions_[i]);
        sa.sa_handler = on_resize;  // no SA_RESTART: a blocked read returns to draw again
        sigaction(SIGWINCH, &sa, &old_winch_);
        termios raw = saved_;
        // Bytes as typed: no echo, no line buffering, Ctrl-C / Ctrl-Z / Ctrl-S / Ctrl-V as keys,
        // CR not turned into LF; output written as it is.
        raw.c_iflag &= ~tcflag_t(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
        raw.c_oflag &= ~tcflag_t(OPOST);
        raw.c_cflag |= CS8;
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        active_ = true;
        // TCSANOW, not TCSAFLUSH: keys typed while the model was answering are kept.
        if (tcsetattr(in_fd_, TCSANOW, &raw) != 0) {
            const int err = errno;
            leave();
            fail("cannot put the terminal in raw mode: %s", std::strerror(err));
        }
        (void)!write(out_fd_, kPasteOn, sizeof kPasteOn - 1);
    }

    void leave() {
        if (!active_) return;
        active_ = false;
        (void)!write(out_fd_, kPasteOff, sizeof kPasteOff - 1);
        tcsetattr(in_fd_, TCSANOW, &saved_);
        g_raw_in_fd = -1;
        g_raw_out_fd = -1;
        for (size_t i = 0; i < std::size(kFatalSignals); ++i) sigaction(kFatalSignals[i], &old_actions_[i], nullptr);
        sigaction(SIGWINCH, &old_winch_, nullptr);
    }

  private:
    int in_fd_, out_fd_;
    termios saved_;
    bool active_ = false;
    struct sigaction old_actions_[std::size(kFatalSignals)] = {};
    struct sigaction old_winch_ = {};
};

}  // namespace

void LineEditor::add_history(const std::string& line) {
    constexpr size_t kMaxHistory = 1000;
    if (line.empty() || (!history_.empty() && history_.back() == line)) return;
    history_.push_back(line);
    if (history_.size() > kMaxHistory) history_.erase(history_.begin());
}

int LineEditor::columns() const {
    winsize ws = {};
    if (ioctl(out_fd_, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 80;
    return ws.ws_col;
}

void LineEditor::write_out(std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = write(out_fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the terminal is gone; reading will say so
        bytes.remove_prefix(size_t(n));
    }
}

void LineEditor::draw(const EditState& state, bool cursor_at_end) {
    std::string out;
    if (cursor_row_ > 0) out += strprintf("\x1b[%dA", cursor_row_);
    out += "\r\x1b[J";  // from the prompt's first row down: all of it again
    const Rendering r = render_edit(prompt_, continuation_prompt_, state.text(),
                                    cursor_at_end ? state.text().size() : state.cursor(), columns());
    out += r.bytes;
    write_out(out);
    cursor_row_ = r.cursor_row;
}

ReadResult LineEditor::read_line(const std::string& prompt, const std::string& continuation_prompt) {
    prompt_ = prompt;
    continuation_prompt_ = continuation_prompt;
    RawMode raw(in_fd_, out_fd_);
    EditState state(history_);
    cursor_row_ = 0;
    g_resized = 0;
    draw(state, false);
    // The line as it stands, the cursor after it, then `tail`: what the user sees when it is done.
    auto finish = [&](ReadStatus status, const char* tail) {
        draw(state, true);
        write_out(tail);
        return ReadResult{status, state.text()};
    };
    for (;;) {
        if (pending_.empty()) {
            char buf[4096];
            const ssize_t n = read(in_fd_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                if (g_resized) {
                    g_resized = 0;
                    draw(state, false);
                    continue;
                }
                return finish(ReadStatus::Interrupted, "^C\r\n");  // SIGINT from elsewhere: as Ctrl-C
            }
            if (n <= 0) return finish(ReadStatus::EndOfInput, "\r\n");  // the terminal hung up
            pending_.assign(buf, size_t(n));
        }
        EditAction action = EditAction::None;
        size_t used = 0;
        while (used < pending_.size() && action == EditAction::None) {
            action = state.feed(static_cast<unsigned char>(pending_[used++]));
        }
        pending_.erase(0, used);  // what follows a finished line stays for the next one
        switch (action) {
            case EditAction::None:
                if (!state.in_paste()) draw(state, false);  // a paste is drawn once, when it ends
                break;
            case EditAction::Submit:
                return finish(ReadStatus::Line, "\r\n");
            case EditAction::Interrupt:
                return finish(ReadStatus::Interrupted, "^C\r\n");
            case EditAction::EndOfInput:
                return ReadResult{ReadStatus::EndOfInput, ""};
            case EditAction::ClearScreen:
                write_out("\x1b[H\x1b[2J");
                cursor_row_ = 0;
                draw(state, false);
                break;
            case EditAction::Suspend:
                draw(state, true);
                write_out("\r\n");
                raw.leave();
                raise(SIGTSTP);  // stops here until `fg`
                raw.enter();
                cursor_row_ = 0;
                draw(state, false);
                break;
        }
    }
}

}  // namespace moelite::app
