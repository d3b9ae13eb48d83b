# Work-arounds for building rosidl interfaces against the ROS 2 PyPI wheels; included by
# CMakeLists.txt and vendor/tf2_msgs/CMakeLists.txt after rosidl_generate_interfaces()
# (docs/building.md, "Traps worked around").
#
# 1. The wheels' exported *__rosidl_generator_py targets carry the include directories of
#    the machine they were built on (/opt/python/cp311-cp311/...). Re-point them at this
#    interpreter's Python and NumPy headers, for this build only (BUILD_INTERFACE keeps
#    them out of the exported CMake targets).
# 2. rosidl_generator_py adds the Python and NumPy include directories to the package's
#    own library's public interface; when the virtual environment lives inside the source
#    tree CMake refuses to export such paths. They are build-only needs: mark them so.
macro(tablet_workcell_fix_rosidl_python_targets package)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(_imported_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _imported_targets)
    if(_target MATCHES "__rosidl_generator_py$")
      set_target_properties(${_target} PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES
        "$<BUILD_INTERFACE:${Python3_INCLUDE_DIRS}>;$<BUILD_INTERFACE:${Python3_NumPy_INCLUDE_DIRS}>")
    endif()
  endforeach()

  set(_py_target ${package}__rosidl_generator_py)
  get_target_property(_py_includes ${_py_target} INTERFACE_INCLUDE_DIRECTORIES)
  set(_wrapped_includes "")
  foreach(_dir IN LISTS _py_includes)
    if(_dir MATCHES "^\\$<")
      list(APPEND _wrapped_includes "${_dir}")
    else()
      list(APPEND _wrapped_includes "$<BUILD_INTERFACE:${_dir}>")
    endif()
  endforeach()
  set_target_properties(${_py_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_wrapped_includes}")
endmacro()
