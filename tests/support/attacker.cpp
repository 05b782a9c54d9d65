// A hostile local user, for the security tests; run as a throw-away user.
//   attacker swap-symlink DIR NAME TARGET
//       as fast as it can, forever: puts a symlink to TARGET at DIR/NAME
//       (atomically, by rename over whatever is there), then removes it.
#include <stdio.h>
#include <unistd.h>

#include <cstring>
#include <string>

int main(int argc, char* argv[]) {
    if (argc == 5 && std::strcmp(argv[1], "swap-symlink") == 0) {
        const std::string dir = argv[2];
        const std::string path = dir + "/" + argv[3];
        const std::string temp = dir + "/." + argv[3] + ".swap";
        for (;;) {
            (void)::unlink(temp.c_str());
            if (::symlink(argv[4], temp.c_str()) == 0)
                (void)::rename(temp.c_str(), path.c_str());
            (void)::unlink(path.c_str());
        }
    }
    std::fprintf(stderr, "usage: %s swap-symlink DIR NAME TARGET\n", argv[0]);
    return 64;
}
