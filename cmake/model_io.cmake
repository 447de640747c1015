# swa_model_io: the model's config and presets, its parameter layout, and safetensors
# checkpoints (src/model/). Uses src/common/'s header-only errors and dtype conversions and
# nlohmann_json; nothing else of swa.
find_package(nlohmann_json REQUIRED)

add_library(swa_model_io STATIC
  src/model/strict_json.cc
  src/model/config.cc
  src/model/config_json.cc
  src/model/presets.cc
  src/model/param_layout.cc
  src/model/safetensors_reader.cc
  src/model/safetensors_writer.cc
  src/model/checkpoint.cc
)
target_include_directories(swa_model_io PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(swa_model_io PRIVATE nlohmann_json::nlohmann_json)
