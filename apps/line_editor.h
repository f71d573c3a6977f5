// Line editing for `moelite chat` in a terminal: a small raw-mode editor over
// termios, written for this project (no readline / libedit dependency).
//
// Three layers, so that the first two can be tested without a terminal:
//  - EditState: the key handling. Bytes go in one at a time (keys, escape
//    sequences, UTF-8, bracketed paste); the edited text, the cursor and an
//    action (submit, interrupt, end of input, ...) come out. No I/O.
//  - render_edit: the bytes that draw a prompt and the edited text from the
//    start of the prompt's first row, wrapped at the terminal width, and leave
//    the cursor where it belongs. The whole text is drawn again on each
//    change: simple, and right for lines longer than the terminal.
//  - LineEditor: the terminal. Raw mode only while a line is being read (never
//    while the model streams), restored on every way out: return, exception,
//    SIGTERM / SIGHUP / SIGQUIT, Ctrl-Z.
//
// Conventions: text is UTF-8; the cursor is a byte offset that always sits on a
// code point boundary and never before a zero-width code point (a combining
// mark moves with its base). Width of a code point: 2 for East Asian wide and
// emoji, 0 for combining marks and zero-width ones, 1 otherwise; a tab is drawn
// as 4 columns. Lines of a multi-line text after the first are drawn after the
// continuation prompt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moelite::app {

// Columns a code point takes in a terminal (0, 1 or 2).
int display_width(uint32_t cp);

// What a byte fed to EditState asks of the caller.
enum class EditAction {
    None,         // the text or cursor may have changed: draw again
    Submit,       // Enter
    Interrupt,    // Ctrl-C: abandon the line
    EndOfInput,   // Ctrl-D on an empty line
    ClearScreen,  // Ctrl-L
    Suspend,      // Ctrl-Z
};

class EditState {
  public:
    // history: earlier inputs, oldest first; it must outlive this object and is
    // never changed by it (edits to a recalled entry live in a scratch copy).
    explicit EditState(const std::vector<std::string>& history) : history_(history), history_index_(history.size()) {}
    explicit EditState(std::vector<std::string>&&) = delete;  // would dangle

    EditAction feed(unsigned char byte);
    EditAction feed(std::string_view bytes);  // the last action that was not None

    const std::string& text() const { return text_; }
    size_t cursor() const { return cursor_; }
    bool in_paste() const { return paste_; }  // inside a bracketed paste: do not draw yet
    void set_text(std::string text, size_t cursor);

  private:
    EditAction key(unsigned char byte);
    EditAction escape_sequence(const std::string& params, unsigned char final);
    void insert(std::string_view utf8);
    void insert_byte(unsigned char byte);  // assembles UTF-8
    void erase(size_t from, size_t to, bool keep_killed);
    size_t next(size_t pos) const;  // the boundary after the character at pos
    size_t prev(size_t pos) const;
    size_t start_of_line(size_t pos) const;  // of the line (of a multi-line text) that holds pos
    size_t word_left(size_t pos, bool alnum_words) const;
    size_t word_right(size_t pos) const;
    void vertical(int direction);  // Up/Down: a line of a multi-line text, else history
    void browse_history(int direction);

    enum class Input { Normal, Escape, Csi, Ss3 };

    const std::vector<std::string>& history_;
    std::vector<std::string> scratch_;  // history plus the new line, while browsing
    size_t history_index_;
    std::string text_;
    size_t cursor_ = 0;
    std::string killed_;  // for Ctrl-Y
    Input input_ = Input::Normal;
    std::string params_;  // of a CSI sequence
    std::string utf8_;    // a code point being assembled
    size_t utf8_need_ = 0;
    bool paste_ = false;
    bool paste_cr_ = false;  // the last pasted byte was '\r' (a '\n' right after it is the same break)
};

// Drawing prompt + text. bytes start at column 0 of the prompt's first row
// (the screen below is assumed clear) and end with the terminal cursor at
// (cursor_row, cursor_col), rows counted from the prompt's first row.
struct Rendering {
    std::string bytes;
    int cursor_row = 0;
    int cursor_col = 0;
    int rows = 1;  // rows drawn
};
Rendering render_edit(std::string_view prompt, std::string_view continuation_prompt, std::string_view text,
                      size_t cursor, int columns);

enum class ReadStatus { Line, Interrupted, EndOfInput };
struct ReadResult {
    ReadStatus status = ReadStatus::EndOfInput;
    std::string text;  // the line; for Interrupted, the abandoned text
};

// Reads lines from a terminal with editing. in_fd and out_fd must be a
// terminal (check with isatty first; use plain reads otherwise).
class LineEditor {
  public:
    LineEditor(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {}

    // Raw mode for the duration of the call. Flush any stdio output first.
    ReadResult read_line(const std::string& prompt, const std::string& continuation_prompt = "... ");

    // Adds an input for Up/Down (not an empty one, not the same as the last).
    void add_history(const std::string& line);
    const std::vector<std::string>& history() const { return history_; }

  private:
    void draw(const EditState& state, bool cursor_at_end);
    void write_out(std::string_view bytes);
    int columns() const;

    int in_fd_;
    int out_fd_;
    std::vector<std::string> history_;
    std::string pending_;  // bytes read but not used yet: typed ahead of the next line
    std::string prompt_, continuation_prompt_;
    int cursor_row_ = 0;  // where the last draw left the cursor, from the prompt's first row
};

}  // namespace moelite::app
