#include "storage/json_text.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace kanban::storage {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

absl::Status Malformed(absl::string_view text) {
  return absl::DataLossError(
      absl::StrFormat("malformed JSON string array in database: %.40s", text));
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<std::vector<std::string>> Array() {
    std::vector<std::string> values;
    SkipSpace();
    if (!Eat('[')) return Malformed(text_);
    SkipSpace();
    if (Eat(']'))
      return AtEnd() ? absl::StatusOr<std::vector<std::string>>(values)
                     : Malformed(text_);
    while (true) {
      SkipSpace();
      std::string value;
      if (!String(&value)) return Malformed(text_);
      values.push_back(std::move(value));
      SkipSpace();
      if (Eat(']')) break;
      if (!Eat(',')) return Malformed(text_);
    }
    if (!AtEnd()) return Malformed(text_);
    return values;
  }

 private:
  bool AtEnd() {
    SkipSpace();
    return pos_ == text_.size();
  }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return false;
    }
    *out = v;
    return true;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return false;
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // High surrogate: need a low one.
            uint32_t low;
            if (!Eat('\\') || !Eat('u') || !Hex4(&low) || low < 0xDC00 || low >= 0xE000) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

void AppendJsonString(absl::string_view value, std::string* out) {
  out->push_back('"');
  // Runs of characters that need no escape are copied whole.
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c != '"' && c != '\\' && c >= 0x20) continue;
    out->append(value.data() + start, i - start);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(out, "\\u%04x", c);
    }
    start = i + 1;
  }
  out->append(value.data() + start, value.size() - start);
  out->push_back('"');
}

void AppendJsonStringArray(const std::vector<std::string>& values, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(values[i], out);
  }
  out->push_back(']');
}

std::string EncodeString(absl::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

std::string EncodeStringArray(const std::vector<std::string>& values) {
  std::string out;
  AppendJsonStringArray(values, &out);
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeStringArray(absl::string_view text) {
  if (text.empty()) return std::vector<std::string>();
  return Parser(text).Array();
}

}  // namespace kanban::storage
