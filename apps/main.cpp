// moelite: the command line. Dispatches to the subcommands in apps/cmd_*.cpp.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <cxxopts.hpp>

#include "apps/commands.h"
#include "core/error.h"

namespace moelite::app {

std::vector<Command>& command_registry() {
    static std::vector<Command> commands;
    return commands;
}

}  // namespace moelite::app

namespace {

void print_usage(FILE* out) {
    auto commands = moelite::app::command_registry();
    std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    std::fprintf(out, "usage: moelite <command> [options]\n\ncommands:\n");
    for (const auto& c : commands) std::fprintf(out, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
    std::fprintf(out, "\n'moelite <command> --help' describes a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const std::string name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
        print_usage(stdout);
        return 0;
    }
    for (const auto& c : moelite::app::command_registry()) {
        if (c.name != name) continue;
        std::string program = "moelite " + name;
        std::vector<char*> args;
        args.push_back(program.data());
        for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
        try {
            return c.run(int(args.size()), args.data());
        } catch (const cxxopts::exceptions::exception& e) {
            std::fprintf(stderr, "moelite %s: %s (see --help)\n", name.c_str(), e.what());
            return 2;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "moelite %s: error: %s\n", name.c_str(), e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "moelite: unknown command '%s'\n\n", name.c_str());
    print_usage(stderr);
    return 2;
}
