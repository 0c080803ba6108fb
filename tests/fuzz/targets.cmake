# The libFuzzer targets, named once for both builds: tests/fuzz/CMakeLists.txt
# (the Clang build that makes them) and tests/CMakeLists.txt (the main build,
# whose CTest runs each briefly). Each has a seed corpus in corpus/<target>/.
set(KANBAN_FUZZ_TARGETS fuzz_requests fuzz_json_text)
