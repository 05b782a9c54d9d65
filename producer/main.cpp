#include "producer.hpp"

int main(int argc, char* argv[]) {
    return coffee::program_main<coffee::producer::options>("coffee-producer", argc, argv,
                                                            coffee::producer::parse_command_line,
                                                            coffee::producer::run);
}
