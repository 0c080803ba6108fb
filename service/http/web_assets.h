// The board's web page (service/http/web/*: HTML, CSS, JavaScript), compiled into
// kanband: CMake turns the files into a generated web_assets.cc (see
// service/http/web/embed_assets.cmake), so the binary needs no files at run time
// and there is no build step for the page itself.
#ifndef KANBAN_SERVICE_HTTP_WEB_ASSETS_H_
#define KANBAN_SERVICE_HTTP_WEB_ASSETS_H_

#include "absl/strings/string_view.h"

namespace kanban::service {

struct WebAsset {
  absl::string_view path;          // "/", "/app.js", ...
  absl::string_view content_type;  // "text/html; charset=utf-8", ...
  absl::string_view body;
};

// The asset served at `path`, or nullptr. The data is static; thread-safe.
const WebAsset* FindWebAsset(absl::string_view path);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HTTP_WEB_ASSETS_H_
