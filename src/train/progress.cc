#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace swa::train {
namespace {

constexpr int kBarWidth = 24;
constexpr double kRedrawsPerSecond = 10;

std::string Format(const char* format, double a, double b = 0, double c = 0) {
  char text[128];
  std::snprintf(text, sizeof(text), format, a, b, c);
  return text;
}

std::string Rate(double tokens_per_s) {
  if (tokens_per_s >= 1e6) return Format("%.2fM tok/s", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e4) return Format("%.1fk tok/s", tokens_per_s / 1e3);
  return Format("%.0f tok/s", tokens_per_s);
}

}  // namespace

Progress::Progress(std::FILE* out, bool terminal, double plain_interval_seconds)
    : out_(out), terminal_(terminal), plain_interval_(plain_interval_seconds) {}

Progress Progress::ForStderr() { return Progress(stderr, ::isatty(STDERR_FILENO) == 1); }

std::string Progress::Duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char text[64];
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  }
  return text;
}

void Progress::Step(const StepReport& r) {
  if (out_ == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  char step[64];
  std::snprintf(step, sizeof(step), "%*lld/%lld", static_cast<int>(std::to_string(r.total).size()),
                static_cast<long long>(r.step), static_cast<long long>(r.total));
  const std::string numbers =
      "loss " + Format("%.4f", r.loss) + "  " + Rate(r.tokens_per_s) + "  ETA " + Duration(r.eta_seconds);
  if (terminal_) {
    const double fraction = r.total > 0 ? std::clamp(static_cast<double>(r.step) / r.total, 0.0, 1.0) : 1.0;
    const int filled = static_cast<int>(fraction * kBarWidth);
    const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
    last_status_ = std::string("step ") + step + " [" + bar + "] " + numbers;
    // At most kRedrawsPerSecond redraws: a fast run would spend its time on the terminal.
    if (line_open_ && r.step != r.total &&
        std::chrono::duration<double>(now - last_draw_).count() < 1.0 / kRedrawsPerSecond) {
      return;
    }
    Draw(last_status_);
    last_draw_ = now;
    return;
  }
  // Plain lines: the first step, the last, and otherwise one per interval.
  const bool due = !printed_plain_ || r.step == r.total ||
                   std::chrono::duration<double>(now - last_plain_).count() >= plain_interval_;
  if (!due) return;
  std::fprintf(out_, "step %s  %s  lr %.3g  grad_norm %.3g\n", step, numbers.c_str(), r.lr, r.grad_norm);
  std::fflush(out_);
  last_plain_ = now;
  printed_plain_ = true;
}

void Progress::Task(const std::string& what, int64_t done, int64_t total) {
  if (out_ == nullptr || !terminal_) return;
  Draw(what + " " + std::to_string(done) + "/" + std::to_string(total));
}

void Progress::Note(const std::string& line) {
  if (out_ == nullptr) return;
  ClearLine();
  std::fprintf(out_, "%s\n", line.c_str());
  if (terminal_ && !last_status_.empty()) Draw(last_status_);
  std::fflush(out_);
}

void Progress::Finish() {
  if (out_ == nullptr || !line_open_) return;
  std::fprintf(out_, "\n");
  std::fflush(out_);
  line_open_ = false;
}

void Progress::Draw(const std::string& text) {
  // \r returns to the line's start, \x1b[K erases what an earlier, longer line left.
  std::fprintf(out_, "\r%s\x1b[K", text.c_str());
  std::fflush(out_);
  line_open_ = true;
}

void Progress::ClearLine() {
  if (!line_open_) return;
  std::fprintf(out_, "\r\x1b[K");
  line_open_ = false;
}

}  // namespace swa::train
