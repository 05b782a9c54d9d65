#include "consumer.hpp"

int main(int argc, char* argv[]) {
    return coffee::program_main<coffee::consumer::options>("coffee-consumer", argc, argv,
                                                            coffee::consumer::parse_command_line,
                                                            coffee::consumer::run);
}
