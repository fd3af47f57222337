// `c3po eval MODEL --task T --data PATH ...`: the evaluation harness (src/eval/), with the
// re-mixing methods of src/remix/ plugged in through the harness's method factory.
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>

#include "cli/commands.h"
#include "cli/remix_flags.h"
#include "eval/command.h"
#include "eval/merge.h"
#include "eval/method.h"
#include "io/error.h"
#include "cli/ranks.h"
#include "io/mpi.h"

namespace c3po::cli {
namespace {
namespace fs = std::filesystem;

int run_merge(const std::vector<std::string>& dirs, const std::string& out) {
  // Folders of a --sweep hold one run per value (FLAG=VALUE), each sharded: join value by value.
  std::vector<std::string> values;
  if (!dirs.empty() && !fs::exists(fs::path(dirs[0]) / "run.json") && fs::is_directory(dirs[0]))
    for (const auto& e : fs::directory_iterator(dirs[0]))
      if (e.is_directory() && fs::exists(e.path() / "run.json")) values.push_back(e.path().filename().string());
  std::sort(values.begin(), values.end());
  if (values.empty()) {
    const auto merged = eval::merge_shards(dirs, out);
    fmt::print("{}", merged.markdown);
    fmt::print(stderr, "c3po merge: {} shards, {} items; results in {}/results.json\n", dirs.size(), merged.items, out);
    return 0;
  }
  for (const auto& v : values) {
    std::vector<std::string> shard_dirs;
    for (const auto& d : dirs) shard_dirs.push_back((fs::path(d) / v).string());
    const auto merged = eval::merge_shards(shard_dirs, (fs::path(out) / v).string());
    fmt::print("\n### {}\n\n{}", v, merged.markdown);
  }
  fmt::print(stderr, "c3po merge: {} sweep values of {} shards joined in {}\n", values.size(), dirs.size(), out);
  return 0;
}

}  // namespace

void add_eval_commands(CLI::App& app, Action& action) {
  auto options = std::make_shared<eval::EvalCommandOptions>();
  CLI::App* cmd = eval::add_eval_subcommand(app, *options);
  auto flags = std::make_shared<RemixFlags>();
  auto store = std::make_shared<std::string>();
  auto sweep = std::make_shared<std::string>();
  cmd->add_option("--reference", *store, "reference store (c3po reference build) for the re-mixing methods");
  cmd->add_option("--sweep", *sweep,
                  "FLAG=V1,V2,...: one evaluation per value of a re-mixing flag (e.g. layers=last:1,last:3,all); "
                  "with --out, each run goes to OUT/FLAG=VALUE; separate --layers lists with ; (layers=11,13;15)");
  add_remix_flags(cmd, *flags);
  cmd->callback([&action, options, flags, store, sweep] {
    action = [options, flags, store, sweep] {
      // MPI lives for the whole command (a sweep runs several evaluations).
      const auto mpi = io::MpiWorld::join_if_launched();
      return run_on_every_rank(mpi.get(), [&] {
      auto run_once = [&](RemixFlags f) {
        eval::EvalCommandOptions o = *options;
        o.mpi = mpi.get();
        if (!f.method_kinds().empty()) {
          f.options();  // reject bad values before loading anything
          o.settings.method_settings = remix_settings(f, *store);
          auto held = std::make_shared<RemixFlags>(f);
          // The harness refuses, by name, the methods that need the letter protocol.
          o.method_factory = [held, store](const eval::MethodContext& ctx) {
            return make_remix_methods(*held, *store, ctx.model, ctx.tokenizer);
          };
        }
        return eval::run_eval_command(o);
      };
      if (sweep->empty()) return run_once(*flags);
      const auto eq = sweep->find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == sweep->size())
        throw Error("", "--sweep", "expected FLAG=V1,V2,... (e.g. layers=last:1,last:3,all), got \"" + *sweep + "\"");
      const std::string name = sweep->substr(0, eq);
      std::vector<std::string> values;
      for (std::size_t start = eq + 1;;) {
        const auto comma = sweep->find(',', start);
        values.push_back(sweep->substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      // layers values contain commas themselves only as lists; a list is given with ';' between values.
      if (name == "layers" && sweep->find(';') != std::string::npos) {
        values.clear();
        for (std::size_t start = eq + 1;;) {
          const auto semi = sweep->find(';', start);
          values.push_back(sweep->substr(start, semi == std::string::npos ? std::string::npos : semi - start));
          if (semi == std::string::npos) break;
          start = semi + 1;
        }
      }
      int code = 0;
      for (const auto& v : values) {
        RemixFlags f = *flags;
        set_remix_flag(f, name, v);
        fmt::print("\n### {} = {}\n\n", name, v);
        std::fflush(stdout);
        eval::EvalCommandOptions saved = *options;
        if (!options->settings.out_dir.empty()) options->settings.out_dir = saved.settings.out_dir + "/" + name + "=" + v;
        code = run_once(f);
        *options = saved;
        if (code != 0) return code;
      }
      return code;
      });
    };
  });

  auto merge = app.add_subcommand("merge", "Join the shard folders of one sharded c3po eval (--shard I/N) into one run");
  auto shard_dirs = std::make_shared<std::vector<std::string>>();
  auto merge_out = std::make_shared<std::string>();
  merge->add_option("SHARD", *shard_dirs, "the --out folder of every shard (a --sweep's folders: each value is joined)")
      ->required();
  merge->add_option("--out", *merge_out, "folder for the joined run.json, items.jsonl and results.json")->required();
  merge->callback([&action, shard_dirs, merge_out] {
    action = [shard_dirs, merge_out] { return run_merge(*shard_dirs, *merge_out); };
  });
}

}  // namespace c3po::cli
