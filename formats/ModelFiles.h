// The files a model names (ONNX external data, safetensors shards, the tokenizer beside a
// checkpoint): each must resolve, every symlink followed, to a file inside the model's folder, so
// a model can never make the compiler read, or copy into its outputs, a file from elsewhere.
// The one exception is Hugging Face's cache, whose snapshot folders
// (.../models--ORG--NAME/snapshots/REV/) hold symlinks to ../../blobs/: there the files may
// resolve anywhere inside that model's cache folder (models--ORG--NAME).
#pragma once

#include <string>

namespace gemma {

// `folder`/`name` as a real path inside the folder (above); it need not exist yet (the caller's
// open reports that). Throws UserError naming `where` (the file that named it) and `what`.
std::string resolveModelFile(const std::string& folder, const std::string& name,
                             const std::string& where, const std::string& what);

} // namespace gemma
