// The one copy of each small text helper (util/text.hpp), held to the exact
// behaviour of the copies it replaced, so their users' output stays the same.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/text.hpp"

namespace {

using namespace kvmready::util;

TEST(TextUtil, JoinPutsTheSeparatorOnlyBetweenWhatIsAlreadyThere) {
    EXPECT_EQ(join({}, ", "), "");
    EXPECT_EQ(join({"a"}, ", "), "a");
    EXPECT_EQ(join({"a", "b", "c"}, "; "), "a; b; c");
    // The replaced copies skipped the separator while nothing was written yet.
    EXPECT_EQ(join({"", "a", "b"}, ","), "a,b");
    EXPECT_EQ(join({"a", "", "b"}, ","), "a,,b");
}

TEST(TextUtil, JoinLinesEndsEveryLine) {
    EXPECT_EQ(join_lines({}), "");
    EXPECT_EQ(join_lines({"a", "", "b"}), "a\n\nb\n");
}

TEST(TextUtil, TrimTakesWhitespaceOffBothEnds) {
    EXPECT_EQ(trim("  a b \t\r\n"), "a b");
    EXPECT_EQ(trim("\n\t "), "");
    EXPECT_EQ(trim("x"), "x");
}

TEST(TextUtil, WordsAndHasWord) {
    EXPECT_EQ(words("  rw,relatime  pagesize=2M\tx\n"), (std::vector<std::string>{"rw,relatime", "pagesize=2M", "x"}));
    EXPECT_TRUE(words(" \t").empty());
    EXPECT_TRUE(has_word("memory,cpu", "cpu", ','));
    EXPECT_FALSE(has_word("memory,cpuset", "cpu", ','));
    EXPECT_TRUE(has_word("quiet intel_iommu=on", "intel_iommu=on"));
    EXPECT_FALSE(has_word("", "x"));
}

// Commands shown to people quote a word only when a shell would read it
// differently; '%' is not such a character (libvirt URIs and paths with
// percent-encoding stay as they are, in `check`, `fix` and `smoke` alike).
TEST(TextUtil, ShellQuoteQuotesOnlyWhatAShellWouldChange) {
    EXPECT_EQ(shell_quote("qemu:///system"), "qemu:///system");
    EXPECT_EQ(shell_quote("/srv/vm%20images"), "/srv/vm%20images");
    EXPECT_EQ(shell_quote("a b"), "'a b'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    EXPECT_EQ(shell_quote(""), "''");
    EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
    EXPECT_EQ(shell_quote("qemu+ssh://h/system?socket=/x"), "'qemu+ssh://h/system?socket=/x'");
}

}  // namespace
