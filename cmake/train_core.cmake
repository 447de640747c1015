# swa_train_core: the training data pipeline (corpus, split, packed batches) and the
# optimizer (AdamW, gradient clipping, learning-rate schedule). It uses src/common/ and the
# C++ standard library only.
add_library(swa_train_core STATIC
  src/train/corpus.cc
  src/train/split.cc
  src/train/batcher.cc
  src/train/optimizer.cc
  src/train/schedule.cc
)
target_include_directories(swa_train_core PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(swa_train_core PUBLIC swa_static)
