# Every doctest TEST_CASE runs as exactly one ctest test, and every ctest
# test of a doctest binary runs a test case. Run by ctest itself (test
# `tests.discovery`) as: cmake -DCTEST=<ctest> -DBUILD_DIR=<dir> -P this-file
#
# It compares, for each doctest binary, the number of test cases the binary
# lists with the number of ctest entries that run it with --test-case=. A
# name that ctest splits (a `;` is CMake's list separator) or drops shows up
# as a difference here, instead of as a test that passes without running.
cmake_minimum_required(VERSION 3.25)

execute_process(COMMAND ${CTEST} --show-only=json-v1
  WORKING_DIRECTORY ${BUILD_DIR}
  OUTPUT_VARIABLE json RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ctest --show-only=json-v1 failed (${rc})")
endif()

string(JSON count LENGTH "${json}" tests)
set(binaries "")
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  string(JSON argc ERROR_VARIABLE no_command LENGTH "${json}" tests ${i} command)
  if(no_command OR argc LESS 2)
    continue()
  endif()
  string(JSON exe GET "${json}" tests ${i} command 0)
  string(JSON arg GET "${json}" tests ${i} command 1)
  if(NOT arg MATCHES "^--test-case=")
    continue()
  endif()
  string(MAKE_C_IDENTIFIER "${exe}" key)
  if(NOT DEFINED entries_${key})
    list(APPEND binaries "${exe}")
    set(entries_${key} 0)
  endif()
  math(EXPR entries_${key} "${entries_${key}} + 1")
endforeach()

if(binaries STREQUAL "")
  message(FATAL_ERROR "no doctest binary found among ctest's tests in ${BUILD_DIR}")
endif()

set(failed FALSE)
foreach(exe IN LISTS binaries)
  string(MAKE_C_IDENTIFIER "${exe}" key)
  execute_process(COMMAND ${exe} --list-test-cases OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT listing MATCHES "passing the current filters: ([0-9]+)")
    message(SEND_ERROR "${exe} --list-test-cases failed (${rc})")
    set(failed TRUE)
    continue()
  endif()
  set(listed ${CMAKE_MATCH_1})
  get_filename_component(name ${exe} NAME)
  if(listed EQUAL entries_${key})
    message(STATUS "${name}: ${listed} test cases, ${entries_${key}} ctest tests")
  else()
    message(SEND_ERROR "${name}: lists ${listed} test cases but ctest runs ${entries_${key}} tests for it "
                       "(a test case name with ';' in it, or a test case that ctest does not run)")
    set(failed TRUE)
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "ctest does not run every test case exactly once")
endif()
