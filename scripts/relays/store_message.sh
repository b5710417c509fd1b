#!/bin/sh
# Delivery agent of the test MTAs (Exim, OpenSMTPD, the private Postfix): stores the
# message on stdin as one new file in DIR, written under a dot-name and renamed, so a
# reader never sees half a file.
#
#   store_message.sh DIR                    stdin is stored as is (Exim: Batch SMTP)
#   store_message.sh DIR SENDER RCPT...     a first line "<SENDER> <RCPT>..." then stdin
#
# Tests/PoolDaemonTests/Support/Mailbox.swift reads both forms back.
set -u
dir=$1
shift
name="$(date +%s%N).$$"
if [ $# -gt 0 ]; then
    sender=$1
    shift
    {
        printf '<%s>' "$sender"
        for r in "$@"; do printf ' <%s>' "$r"; done
        printf '\n'
        cat
    } >"$dir/.$name" || exit 75
else
    cat >"$dir/.$name" || exit 75
fi
mv "$dir/.$name" "$dir/$name" || exit 75
