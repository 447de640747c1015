// What a training run shows while it works: on a terminal, one status line redrawn in
// place (a bar with the step, loss, tokens/s and ETA); elsewhere (a log file, a pipe),
// plain lines, at most one every few seconds plus the first and last steps, so that logs
// stay readable for long runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace swa::train {

struct StepReport {
  int64_t step = 0, total = 0;  // step of total (the schedule's length)
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0;  // over the steps of this run so far
  double eta_seconds = 0;
};

class Progress {
 public:
  // `out` is not owned; null shows nothing. `terminal`: redraw in place (else plain lines).
  Progress(std::FILE* out, bool terminal, double plain_interval_seconds = 5.0);
  // A Progress on stderr, redrawing when stderr is a terminal (isatty).
  static Progress ForStderr();

  void Step(const StepReport& report);
  // Work inside a step (evaluation): "what done/total"; drawn on a terminal only.
  void Task(const std::string& what, int64_t done, int64_t total);
  // A line of its own (evaluation results, saves, warnings); clears the status line.
  void Note(const std::string& line);
  // Ends the status line (call once at the end).
  void Finish();

  // "1h02m03s", "2m05s", "7s".
  static std::string Duration(double seconds);

 private:
  void Draw(const std::string& text);
  void ClearLine();

  std::FILE* out_;
  bool terminal_;
  double plain_interval_;
  bool line_open_ = false;  // a status line is on screen (terminal)
  std::chrono::steady_clock::time_point last_plain_{}, last_draw_{};
  bool printed_plain_ = false;
  std::string last_status_;
};

}  // namespace swa::train
