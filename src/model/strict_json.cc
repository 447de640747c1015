#include "model/strict_json.h"

#include <limits>
#include <set>
#include <vector>

#include "common/error.h"

namespace swa::model {

std::string ShortDump(const nlohmann::json& value) {
  // A field holding a megabyte string must not make a megabyte error message.
  constexpr size_t kMaxChars = 64;
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

nlohmann::json ParseStrictJson(std::string_view text, const std::string& what, int max_depth) {
  // One set of keys per open object: a key seen twice in the same object is rejected.
  std::vector<std::set<std::string>> open_objects;
  auto check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= max_depth) {
      ThrowInvalid(what + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
    }
    if (event == Event::object_start) open_objects.emplace_back();
    if (event == Event::object_end) open_objects.pop_back();
    if (event == Event::key && !open_objects.back().insert(parsed.get<std::string>()).second) {
      ThrowInvalid(what + ": duplicate key \"" + parsed.get<std::string>() + "\"");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::exception& e) {
    ThrowInvalid(what + ": invalid JSON: " + e.what());
  }
}

int64_t JsonInt64(const nlohmann::json& value, const std::string& field) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(u);
    ThrowInvalid(field + " (" + ShortDump(value) + ") does not fit a 64-bit integer");
  }
  ThrowInvalid(field + " must be an integer, got " + ShortDump(value));
}

double JsonNumber(const nlohmann::json& value, const std::string& field) {
  if (!value.is_number()) ThrowInvalid(field + " must be a number, got " + ShortDump(value));
  return value.get<double>();
}

bool JsonBool(const nlohmann::json& value, const std::string& field) {
  if (!value.is_boolean()) ThrowInvalid(field + " must be true or false, got " + ShortDump(value));
  return value.get<bool>();
}

}  // namespace swa::model
