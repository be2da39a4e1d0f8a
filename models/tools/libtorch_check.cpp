// Loads bundle modules with libtorch alone (no Python, as tch's CModule::load does) and runs
// forward at 360x480, 720x960 and 240x336, printing output shapes and the fastest of 10 calls.
//
//   T=.venv/lib/python3.11/site-packages/torch
//   g++ -O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 models/tools/libtorch_check.cpp \
//       -I$T/include -I$T/include/torch/csrc/api/include -L$T/lib -Wl,-rpath,$T/lib \
//       -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -o /tmp/libtorch_check
//   /tmp/libtorch_check models/bundles/*/model.pt
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <utility>
#include <vector>

int main(int argc, char** argv) {
  at::set_num_threads(2);
  for (int i = 1; i < argc; ++i) {
    torch::jit::script::Module module = torch::jit::load(argv[i]);
    module.eval();
    for (auto hw : std::vector<std::pair<int, int>>{{360, 480}, {720, 960}, {240, 336}}) {
      c10::InferenceMode guard;
      auto img = torch::randint(0, 256, {1, 3, hw.first, hw.second}, torch::kUInt8);
      for (int w = 0; w < 3; ++w) module.forward({img});  // the profiling executor settles
      double best = 1e9;
      c10::IValue out;
      for (int r = 0; r < 10; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        out = module.forward({img});
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
        best = std::min(best, ms.count());
      }
      auto outputs = out.toTuple();
      std::cout << argv[i] << " " << hw.first << "x" << hw.second << ": logits "
                << outputs->elements()[0].toTensor().sizes() << " features "
                << outputs->elements()[1].toTensor().sizes() << ", min " << best << " ms\n";
    }
  }
  return 0;
}
