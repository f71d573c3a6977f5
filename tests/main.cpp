// The doctest runner for the whole suite (one file per unit beside this one).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
