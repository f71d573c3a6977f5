// The Jinja lexer: template source -> tokens, with whitespace control applied.
//
// Text between tags becomes Text tokens, already trimmed as the environment
// says: `{%-` / `{{-` / `{#-` strip all whitespace before the tag, `-%}` /
// `-}}` / `-#}` all whitespace after it; trim_blocks drops the first newline
// after a block or comment tag, lstrip_blocks drops spaces and tabs between
// the start of a line and a block or comment tag (`{%+` and `+%}` opt out).
// The final newline of the source is dropped unless keep_trailing_newline.
// These are the settings transformers uses for chat templates (trim_blocks and
// lstrip_blocks on).
//
// Comments produce no tokens. `{% raw %}...{% endraw %}` produces one Text
// token. Inside `{{ }}` and `{% %}` the usual expression tokens follow,
// closed by VarEnd / BlockEnd; brackets must balance before a closing `}}`
// counts. String literals are unescaped here (Python escapes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moelite::jinja {

enum class TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
    TokenKind kind = TokenKind::Eof;
    std::string text;  // Text content, name, unescaped string, operator spelling
    int64_t int_value = 0;
    double float_value = 0.0;
    int line = 1;
};

struct LexOptions {
    bool trim_blocks = true;
    bool lstrip_blocks = true;
    bool keep_trailing_newline = false;
};

// Throws moelite::Error("line N: ...") on a lexical error (unterminated tag,
// string or comment, unexpected character). The last token is Eof.
std::vector<Token> lex(std::string_view source, const LexOptions& options = {});

const char* token_kind_name(TokenKind kind);

}  // namespace moelite::jinja
