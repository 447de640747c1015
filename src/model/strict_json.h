// JSON parsing for files swa reads from disk (model configs, safetensors headers): a
// duplicate key or nesting deeper than any of these formats allows is an error, not a
// silently chosen value, and every error names what was being parsed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace swa::model {

// Parses `text`; `what` names the source in error messages (e.g. "config", "file.safetensors").
// Throws swa::Error on invalid JSON, a duplicate key or nesting deeper than max_depth.
nlohmann::json ParseStrictJson(std::string_view text, const std::string& what, int max_depth);

// `value` as JSON text, cut to a few dozen characters, for error messages.
std::string ShortDump(const nlohmann::json& value);

// A JSON value's integer if it is one (not 3.0, not true) and fits int64, else throws
// naming `field`.
int64_t JsonInt64(const nlohmann::json& value, const std::string& field);
// A JSON number (integer or not) as double, else throws naming `field`.
double JsonNumber(const nlohmann::json& value, const std::string& field);
bool JsonBool(const nlohmann::json& value, const std::string& field);

}  // namespace swa::model
