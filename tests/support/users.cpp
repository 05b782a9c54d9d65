#include "users.hpp"

#include "process.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <random>

namespace coffee::test {

namespace {

constexpr const char* useradd = "/usr/sbin/useradd";
constexpr const char* userdel = "/usr/sbin/userdel";
constexpr const char* groupadd = "/usr/sbin/groupadd";
constexpr const char* groupdel = "/usr/sbin/groupdel";
constexpr const char* getent = "/usr/bin/getent";
constexpr const char* setpriv = "/usr/bin/setpriv";

std::string random_hex(std::size_t digits) {
    std::random_device device;
    std::string out;
    while (out.size() < digits)
        out += "0123456789abcdef"[device() % 16];
    return out;
}

bool name_is_free(const std::string& name) {
    // getent exits 2 when the key is not found.
    return run({getent, "passwd", name}) == 2 && run({getent, "group", name}) == 2;
}

}  // namespace

std::unique_ptr<throwaway_user> throwaway_user::create(std::string& why_not) {
    if (::geteuid() != 0) {
        why_not = "needs root to create throw-away users";
        return nullptr;
    }
    for (const char* tool : {useradd, userdel, groupadd, groupdel, getent, setpriv}) {
        if (::access(tool, X_OK) != 0) {
            why_not = std::string{tool} + " is missing";
            return nullptr;
        }
    }
    std::unique_ptr<throwaway_user> user{new throwaway_user};
    for (int attempt = 0; attempt < 5 && user->name_.empty(); ++attempt) {
        const std::string name = "cfs" + random_hex(10);
        if (name_is_free(name))
            user->name_ = name;
    }
    if (user->name_.empty()) {
        why_not = "no free user name found";
        return nullptr;
    }
    user->group_made_ = run({groupadd, user->name_}) == 0;
    user->user_made_ = user->group_made_ &&
                       run({useradd, "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            "--gid", user->name_, user->name_}) == 0;
    const passwd* pw = user->user_made_ ? ::getpwnam(user->name_.c_str()) : nullptr;
    if (pw == nullptr) {
        why_not = "useradd/groupadd failed for " + user->name_;
        return nullptr;  // the destructor removes what was made
    }
    user->uid_ = pw->pw_uid;
    user->gid_ = pw->pw_gid;
    return user;
}

throwaway_user::~throwaway_user() {
    if (user_made_)
        (void)run({userdel, name_});
    if (group_made_)
        (void)run({groupdel, name_});
}

std::vector<std::string> throwaway_user::as_user(const std::vector<std::string>& command) const {
    std::vector<std::string> argv{setpriv, "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_),
                                  "--init-groups", "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

std::string unique_tmp_path() {
    for (;;) {
        std::string path = "/tmp/cfs-" + random_hex(12);
        std::error_code ec;
        if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
            return path;
    }
}

}  // namespace coffee::test
