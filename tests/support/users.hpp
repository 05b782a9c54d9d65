#pragma once
// Test support: throw-away users for tests that play a hostile local user.
// The tests run as root; each user gets its own group, a name that cannot
// clash with a real account, and is removed with its group afterwards.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace coffee::test {

class throwaway_user {
public:
    // Creates the user and its group (useradd, groupadd), named "cfs" and
    // 10 random hex digits, checked free with getent first. Returns null and
    // sets `why_not` when it cannot (not root, no useradd, no setpriv).
    static std::unique_ptr<throwaway_user> create(std::string& why_not);
    ~throwaway_user();  // userdel, groupdel
    throwaway_user(const throwaway_user&) = delete;
    throwaway_user& operator=(const throwaway_user&) = delete;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] uid_t uid() const noexcept { return uid_; }
    [[nodiscard]] gid_t gid() const noexcept { return gid_; }
    // argv that runs `command` as this user, with only its own group
    // (setpriv --reuid --regid --init-groups).
    [[nodiscard]] std::vector<std::string> as_user(const std::vector<std::string>& command) const;

private:
    throwaway_user() = default;
    std::string name_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    bool group_made_ = false;
    bool user_made_ = false;
};

// A unique name for a scratch path directly in /tmp (for tests that need
// /tmp itself as the parent): "/tmp/cfs-" and random hex digits.
[[nodiscard]] std::string unique_tmp_path();

}  // namespace coffee::test
