# C++ for the CUDA emulation, included from tests/CMakeLists.txt: CMake
# enables a language for the directory that asks and those below it, and
# the emulated .cu libraries (lt_cuda_emu_library) are defined in tests/,
# so tests/ must be the one that asks. The C compiler's family and flags
# carry over: clang's C builds (the fuzzing build) get clang++, and the
# x86-64-v3/v4 builds' CMAKE_C_FLAGS (-march=...) reach the C++ too.
if(NOT CMAKE_CXX_COMPILER AND NOT DEFINED ENV{CXX} AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  get_filename_component(lt_cc_dir ${CMAKE_C_COMPILER} DIRECTORY)
  find_program(lt_clangxx NAMES clang++ HINTS ${lt_cc_dir} NO_CACHE)
  if(lt_clangxx)
    set(CMAKE_CXX_COMPILER ${lt_clangxx})
  endif()
endif()
if(NOT DEFINED CMAKE_CXX_FLAGS_INIT)
  set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS}")
endif()
enable_language(CXX)
