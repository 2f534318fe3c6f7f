// importModel: which frontend reads a model path (ImportedModel.h).
#include "frontend/GgufImporter.h"
#include "frontend/HFImporter.h"
#include "frontend/OnnxImporter.h"

#include <filesystem>

namespace gemma {

ImportedModel importModel(const std::string& path, std::optional<Head> head) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (fs::is_regular_file(p))
    return isGgufFile(path) ? importGgufModel(path, head) : importOnnxModel(path, head);
  if (fs::is_directory(p) && fs::exists(p / "model.onnx") && !fs::exists(p / "model.safetensors") &&
      !fs::exists(p / "model.safetensors.index.json"))
    return importOnnxModel((p / "model.onnx").string(), head);
  return importHFCheckpoint(path, head);
}

} // namespace gemma
