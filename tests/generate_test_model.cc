// Writes the bigram model of generate_test_util.h as a checkpoint, for the tests that run
// `swa generate` as a process (generate_cli_check.py):
//   generate_test_model OUT.safetensors CHAIN...
// where each CHAIN is comma-separated token ids (bytes 0..255, BOS 256, EOS 257), every
// token followed by the next in greedy decoding; tokens without a successor end in EOS.
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "generate_test_util.h"
#include "model/checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors CHAIN...\n", argv[0]);
    return 2;
  }
  try {
    std::vector<std::vector<int32_t>> chains;
    for (int i = 2; i < argc; ++i) {
      std::vector<int32_t> chain;
      std::istringstream in(argv[i]);
      for (std::string id; std::getline(in, id, ',');) chain.push_back(std::stoi(id));
      chains.push_back(chain);
    }
    swa::model::SaveCheckpoint(argv[1], swa::generate_test::BigramConfig(),
                               swa::generate_test::BigramParams(chains).data(),
                               swa::model::StoredDType::kF32);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generate_test_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
