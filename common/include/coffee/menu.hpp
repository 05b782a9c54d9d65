#pragma once
#include <array>
#include <string_view>

namespace coffee {

// What the shop serves: the producer's --count orders and the demo's
// customers cycle through it, in this order.
inline constexpr std::array<std::string_view, 4> menu{"Espresso", "Arabica", "Latte", "Cappuccino"};

}  // namespace coffee
