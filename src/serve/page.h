// The page served at GET /: a prompt box whose completion streams in (fetch over the
// Server-Sent Events of /v1/completions), and two small canvas charts, decode tokens/s and
// KV-cache bytes, drawn from /metrics once a second. Plain HTML and JavaScript embedded
// in the binary: nothing to install or fetch.
#pragma once

#include <string_view>

namespace swa::serve {

std::string_view IndexPage();

}  // namespace swa::serve
