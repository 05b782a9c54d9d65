// The demo's frame, as drawn: what the consumer reports over the notify
// socket (STATUS=, the baristas' orders) reaches the terminal escaped.
#include <live_view.hpp>

#include <doctest/doctest.h>

#include <string>

using coffee::launcher::demo_snapshot;

namespace {

// ESC[2J clears the screen; OSC 52 writes the clipboard; U+202E reverses the text after it.
const std::string clear_screen = "\x1b[2J";
const std::string set_clipboard = "\x1b]52;c;cm0gLXJmIH4K\x07";
const std::string reverse = "\xe2\x80\xae";

demo_snapshot hostile_snapshot() {
    demo_snapshot s;
    s.title = "test";
    s.fifo = "/tmp/orders";
    s.consumer_pid = 42;
    s.consumer_running = true;
    s.baristas = 1;
    s.shop.ready = true;
    s.shop.status = clear_screen + set_clipboard + "served 3" + reverse + "evil";
    s.shop.baristas = {clear_screen + "Latte" + reverse + "for ana"};
    return s;
}

std::string frame_text(const demo_snapshot& s, bool color) {
    std::string text;
    for (const auto& line : coffee::launcher::render_frame(s, 200, 60, color))
        text += line + "\n";
    return text;
}

}  // namespace

TEST_CASE("the live view draws the consumer's STATUS= and orders escaped: no escape sequence or bidi control reaches the terminal") {
    const demo_snapshot s = hostile_snapshot();
    for (const bool color : {false, true}) {
        CAPTURE(color);
        const std::string text = frame_text(s, color);
        CHECK(text.find(clear_screen) == std::string::npos);
        CHECK(text.find("\x1b]") == std::string::npos);
        CHECK(text.find('\x07') == std::string::npos);
        CHECK(text.find(reverse) == std::string::npos);
        if (!color)
            CHECK(text.find('\x1b') == std::string::npos);
        // Still there, shown the way the logs show it.
        CHECK(text.find("STATUS=\"\\x1b[2J\\x1b]52;c;cm0gLXJmIH4K\\x07served 3\\xe2\\x80\\xaeevil\"") != std::string::npos);
        CHECK(text.find("\\x1b[2JLatte\\xe2\\x80\\xaefor ana") != std::string::npos);
    }
}
