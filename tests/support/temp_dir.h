// A fresh directory under $TMPDIR (or /tmp) for one test, removed with
// everything in it when the object is destroyed.
#ifndef KANBAN_TESTS_SUPPORT_TEMP_DIR_H_
#define KANBAN_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace kanban::testing {

class TempDir {
 public:
  TempDir();   // Aborts the test binary if no directory can be made.
  ~TempDir();  // Removes the directory tree.
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(const std::string& name) const;

 private:
  std::string path_;
};

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_SUPPORT_TEMP_DIR_H_
