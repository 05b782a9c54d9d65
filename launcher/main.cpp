#include "launcher.hpp"

int main(int argc, char* argv[]) {
    return coffee::program_main<coffee::launcher::options>("coffee-launcher", argc, argv,
                                                            coffee::launcher::parse_command_line,
                                                            coffee::launcher::run);
}
