// `swa preset NAME [--size default|small|tiny]`: prints a preset's config as JSON (the schema
// of a checkpoint's metadata), so that scripts can build the same model elsewhere.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "model/config.h"
#include "model/presets.h"

namespace swa::cli {

CLI::App* AddPresetCommand(CLI::App* app, PresetCommandOptions* opt) {
  CLI::App* cmd = app->add_subcommand("preset", "Print a model preset's config JSON");
  cmd->add_option("name", opt->name, "Preset")->required()->check(CLI::IsMember(model::PresetNames()));
  cmd->add_option("--size", opt->size, "default (~9.5M parameters), small (~1.6M) or tiny")
      ->check(CLI::IsMember({"default", "small", "tiny"}));
  return cmd;
}

int RunPreset(const PresetCommandOptions& opt) {
  const model::PresetSize size = model::PresetSize::Named(opt.size);
  std::printf("%s\n", model::ConfigToJson(model::Preset(opt.name, size)).c_str());
  return 0;
}

}  // namespace swa::cli
