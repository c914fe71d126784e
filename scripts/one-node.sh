# Sourced by the shell scripts: export the one-machine MPI settings of scripts/one-node.env,
# keeping any the caller has already set.
while IFS= read -r loom_line; do
    case $loom_line in '' | '#'*) continue ;; esac
    loom_name=${loom_line%%=*}
    [ -n "${!loom_name+set}" ] || export "$loom_line"
done <"$(dirname "${BASH_SOURCE[0]}")/one-node.env"
unset loom_line loom_name
