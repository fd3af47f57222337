// `c3po tensors PATH`: lists the tensors of a safetensors file or checkpoint folder.
#include <fmt/core.h>

#include "cli/commands.h"
#include "io/safetensors.h"

namespace c3po::cli {

void add_io_commands(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("tensors", "List the tensors of a .safetensors file or checkpoint folder");
  auto path = std::make_shared<std::string>();
  cmd->add_option("PATH", *path, "a .safetensors file, or a folder with model.safetensors(.index.json)")
      ->required();
  cmd->callback([&action, path] {
    action = [path] {
      auto ck = io::Checkpoint::open(*path);
      for (const auto& name : ck.names()) {
        const auto& t = ck.get(name);
        std::string shape;
        for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
        fmt::print("{}\t{}\t[{}]\n", name, io::dtype_name(t.dtype), shape);
      }
      fmt::print("# {} tensors, {:.1f} MiB\n", ck.names().size(), ck.total_bytes() / 1048576.0);
      return 0;
    };
  });
}

}  // namespace c3po::cli
