// The `moelite` subcommands. Each lives in its own apps/cmd_*.cpp and
// registers itself with a static CommandRegistration; main.cpp dispatches.
// A command parses its flags (cxxopts), calls the library, and prints.
// moelite::Error thrown from a command is reported by main as one line on
// stderr with exit code 1.
#pragma once

#include <string>
#include <vector>

namespace moelite::app {

struct Command {
    std::string name;
    std::string summary;
    int (*run)(int argc, char** argv);  // argv[0] is "moelite <name>"
};

std::vector<Command>& command_registry();

struct CommandRegistration {
    CommandRegistration(const char* name, const char* summary, int (*run)(int, char**)) {
        command_registry().push_back({name, summary, run});
    }
};

}  // namespace moelite::app
