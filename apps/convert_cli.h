// What `moelite convert` and `moelite quantize` share: the recipe flags
// (--type, --experts, --attn, --embed, --override, --threads), the progress
// display, Ctrl-C handling, and the final summary.
#pragma once

#include <atomic>
#include <cxxopts.hpp>

#include "convert/converter.h"

namespace moelite::app {

// Adds --experts, --attn, --embed, --override, --threads, --quiet.
void add_recipe_options(cxxopts::Options& options);
// Builds the options from parsed flags and the type name; Error on a bad flag.
ConvertOptions recipe_options_from(const cxxopts::ParseResult& args, const std::string& type_name);

// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise a
// plain line every few seconds. Returns the callback to put in ConvertOptions.
std::function<void(const ConvertProgress&)> make_progress_printer(const char* command);

// SIGINT / SIGTERM set the returned flag (the converter stops between chunks
// and removes its temporary file) instead of killing the process.
const std::atomic<bool>* install_interrupt_flag();

// Prints notes, tensor types and throughput to stdout.
void print_report(const ConvertReport& report);

}  // namespace moelite::app
