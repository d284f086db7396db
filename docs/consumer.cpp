// Embedding emergent (docs/api.md): the NTK of a one-hidden-layer ReLU network on two inputs.
#include <emergent/emergent.hpp>
#include <iostream>

int main() {
  const auto arch = emergent::Architecture::parse("dense(512, w=1.5, b=0.1) relu dense(1)");
  emergent::RowMatrix x(2, 3);
  x << 1.0, 0.0, 0.0,
       0.6, 0.8, 0.0;
  const emergent::Kernels k = emergent::kernels(arch, emergent::Inputs(x, emergent::ExampleShape::vector(3)));
  std::cout.precision(17);
  std::cout << k.ntk << "\n";
}
