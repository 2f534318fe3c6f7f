// Files a model names, kept inside its folder (ModelFiles.h).
#include "formats/ModelFiles.h"

#include "ir/Diagnostics.h"

#include <filesystem>

namespace gemma {

namespace fs = std::filesystem;

namespace {

// Where a folder's files may resolve: the folder itself, or a Hugging Face cache model folder.
fs::path allowedRoot(const fs::path& folder) {
  fs::path parent = folder.parent_path();
  if (parent.filename() == "snapshots" &&
      parent.parent_path().filename().string().rfind("models--", 0) == 0)
    return parent.parent_path();
  return folder;
}

bool isInside(const fs::path& path, const fs::path& root) {
  fs::path relative = path.lexically_relative(root);
  return !relative.empty() && relative.is_relative() && *relative.begin() != "..";
}

} // namespace

std::string resolveModelFile(const std::string& folder, const std::string& name,
                             const std::string& where, const std::string& what) {
  std::error_code error;
  fs::path realFolder = fs::weakly_canonical(fs::absolute(folder), error);
  if (error)
    throw UserError(Location::named(where),
                    what + ": cannot resolve the folder '" + folder + "': " + error.message());
  fs::path lexical = fs::path(folder) / name;
  fs::path real = fs::weakly_canonical(fs::absolute(lexical), error);
  if (error)
    throw UserError(Location::named(where),
                    what + " '" + lexical.string() + "' cannot be resolved: " + error.message());
  if (!isInside(real, allowedRoot(realFolder)))
    throw UserError(Location::named(where), what + " '" + lexical.string() + "' resolves to '" +
                                                real.string() +
                                                "', outside the model's folder: refused");
  return real.string();
}

} // namespace gemma
