/// The version `--version` prints.
let edgebufVersion = "0.1.0"
