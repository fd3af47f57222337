#pragma once
// `c3po train-demo`: generate the synthetic tasks, train the BPE tokenizer, train the OLMoE demo
// model with LibTorch on the CPU, evaluate it in the letter protocol and save an HF folder.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "demo/olmoe_config.h"
#include "demo/tasks.h"

namespace c3po::demo {

// Text -> token ids, exactly as the shipped tokenizer.json encodes it.
using TextEncoder = std::function<std::vector<int32_t>(const std::string&)>;
// Builds the encoder from a written tokenizer.json (lets the training use the c3po tokenizer).
using EncoderFactory = std::function<TextEncoder(const std::string& tokenizer_json_path)>;

struct TrainDemoOptions {
  std::string out_dir;
  uint64_t seed = 1;
  int steps = 1500;
  int threads = 1;  // the shipped model was trained with 1; the result depends on it
  int batch_size = 32;
  double learning_rate = 3e-3;
  double min_learning_rate_ratio = 0.1;  // cosine decay ends at lr * this
  int warmup_steps = 50;
  double weight_decay = 0.01;
  double answer_loss_weight = 3.0;  // see train_demo.cpp: loss = text CE + weight * answer CE
  // Routing supervision at the answer position (docs/method.md section 11): weight of
  // KL(target || router) summed over the MoE layers; the target puts `routing_target_mass` on the
  // two experts of the cue's family (2f, 2f+1) and spreads the rest over the others.
  double routing_loss_weight = 1.0;
  double routing_target_mass = 0.7;
  int log_every = 25;
  int eval_every = 250;  // test-split accuracy in the progress log (0: only at the end)
  SplitSizes sizes;
  OlmoeConfig model;
  EncoderFactory encoder_factory;  // empty: the c3po tokenizer (src/tokenizer) on tokenizer.json
  std::function<void(const std::string&)> log;  // progress lines; empty: silent
  bool data_only = false;  // write data/*.jsonl and stop (no tokenizer, no training)
};

// data/{train,reference,dev,dev-shifted,test,test-shifted}.jsonl of demo_data(seed, sizes).
void write_demo_data(const std::string& dir, uint64_t seed, const SplitSizes& sizes);

struct FamilyAccuracy {
  int correct = 0;
  int total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / total : 0.0; }
};

struct Evaluation {
  std::map<std::string, FamilyAccuracy> per_family;
  FamilyAccuracy overall;
};

struct TrainDemoResult {
  std::vector<double> step_losses;  // total loss per step
  double final_train_loss = 0;      // mean total loss over the last 10% of steps
  double seconds = 0;
  Evaluation test, reference, test_shifted;
  int64_t train_tokens = 0;
};

TrainDemoResult train_demo(const TrainDemoOptions& options);

// Accuracy of the model in out_dir (config.json + model.safetensors + tokenizer.json) on items,
// by the training-time forward: argmax over the option letters' logits at the last prompt token.
Evaluation evaluate_folder(const std::string& dir, const std::vector<McItem>& items,
                           const EncoderFactory& encoder_factory = {}, int threads = 2);

}  // namespace c3po::demo
