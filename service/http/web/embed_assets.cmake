# Writes OUT, a C++ file defining kanban::service::FindWebAsset (see
# service/http/web_assets.h), from the files in service/http/web/. Run by the build:
#   cmake -DWEB_DIR=service/http/web -DOUT=web_assets.cc -P embed_assets.cmake
# index.html is served at "/", every other file at "/<name>". Bytes are
# written as hex so that no file content can break the C++ source.
set(types_html "text/html; charset=utf-8")
set(types_js "text/javascript; charset=utf-8")
set(types_css "text/css; charset=utf-8")
set(types_svg "image/svg+xml")

file(GLOB files RELATIVE ${WEB_DIR} ${WEB_DIR}/*.html ${WEB_DIR}/*.js ${WEB_DIR}/*.css
     ${WEB_DIR}/*.svg)
list(SORT files)
set(data "")
set(table "")
set(i 0)
foreach(name ${files})
  file(READ ${WEB_DIR}/${name} hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  string(REGEX MATCH "[^.]+$" ext ${name})
  set(type "${types_${ext}}")
  if(name STREQUAL "index.html")
    set(path "/")
  else()
    set(path "/${name}")
  endif()
  string(APPEND data "const char kAsset${i}[] = {${bytes}};\n")
  string(APPEND table "    {\"${path}\", \"${type}\", absl::string_view(kAsset${i}, ${size})},\n")
  math(EXPR i "${i} + 1")
endforeach()

file(WRITE ${OUT}.tmp "// Generated from service/http/web/ by embed_assets.cmake; do not edit.
#include \"service/http/web_assets.h\"

namespace kanban::service {
namespace {
${data}
const WebAsset kAssets[] = {
${table}};
}  // namespace

const WebAsset* FindWebAsset(absl::string_view path) {
  for (const WebAsset& asset : kAssets) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace kanban::service
")
# Only touch OUT when it changed, so an unchanged page recompiles nothing.
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
